"""The gateway's data plane: the ZeroMQ link to the workers and to the supervisor, and metrics.

- `backends.py`: `Backends`, what the rest of the gateway calls (forward a request, cancel, supervisor events);
- `worker_router.py`: the ROUTER the workers connect to, and who really sent each message;
- `pending.py`: the requests in flight, their timeouts and progress tokens;
- `links.py`: which worker generation serves each backend, and the supervisor's status of each;
- `supervisor_link.py`: the subscription to the supervisor (backend states, config);
- `metrics.py`: the per-backend metrics built from both, in Prometheus text."""
