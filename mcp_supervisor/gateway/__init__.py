"""The gateway process: one MCP server in front of every backend, in layers.

- `frontends/`: how clients reach it (HTTP in both eras, `/sse`, stdio) and the edge checks;
- `server/`: MCP semantics (lifecycle, catalog, access, eras, input rounds, audit);
- `dataplane/`: the ZeroMQ link to the workers and to the supervisor, and metrics;
- `main.py`, `runtime.py`, `app.py`, `tcp_socket.py`: the process that wires them together."""
