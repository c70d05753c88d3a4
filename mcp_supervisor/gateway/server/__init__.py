"""The gateway as one MCP server: lifecycle and local methods, the aggregated catalog and who may see what,
both eras' request handling, requests a backend sends to the client, and the audit trail.

The core (core.py) takes a `RequestContext` per request (request_context.py: a handshake-era session's, or a
2026-07-28 request's own) and answers through a table of routes (routes.py, per catalog kind: kinds.py).
Its collaborators get narrow dependencies, never the core: backend_calls.py (to a backend), subscriptions.py,
log_routing.py, modern_requests.py (through `ModernPorts`), input_rounds.py.

Nothing here knows about HTTP or sockets: front ends hand messages in, and the data plane (`gateway.dataplane`)
carries what belongs to a backend."""
