"""The gateway's front ends: how clients reach it (`/mcp` in both eras, the 2024-11-05 `/sse` transport, stdio)
and the edge every HTTP request passes first (Host/Origin guard, authentication, OAuth, size and time limits).

Front ends turn bytes into JSON-RPC messages and replies back into bytes; what a message means is decided in
`gateway.server`. Only the handshake-era transports keep sessions."""
