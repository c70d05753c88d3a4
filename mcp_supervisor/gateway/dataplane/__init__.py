"""The gateway's data plane: the ZeroMQ ROUTER the workers connect to with its pending requests, the link to
the supervisor (backend states), and the per-backend metrics built from both."""
