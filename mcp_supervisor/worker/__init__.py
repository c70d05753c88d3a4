"""The worker process: one per backend, owning exactly one backend connection (a sandboxed stdio child, SSE or
Streamable HTTP) and relaying it to the gateway over a ZeroMQ DEALER. Workers are forked from a zygote that has
these modules imported already."""
