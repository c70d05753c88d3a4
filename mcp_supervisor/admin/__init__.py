"""The admin web UI: a Starlette sub-app the gateway mounts at `/admin` (see docs/admin.md)."""
