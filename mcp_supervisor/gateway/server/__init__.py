"""The gateway as one MCP server: lifecycle and local methods, the aggregated catalog and who may see what,
both eras' request handling, requests a backend sends to the client, and the audit trail.

Nothing here knows about HTTP or sockets: front ends hand messages in, and the data plane (`gateway.dataplane`)
carries what belongs to a backend."""
