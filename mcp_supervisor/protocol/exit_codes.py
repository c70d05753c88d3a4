"""Exit codes a child of the supervisor uses to say something more specific than "crashed"."""

from __future__ import annotations

# The gateway could not listen on its port (another program has it): restarting would only fail the same way,
# so the supervisor stops the whole tree at once and exits EXIT_CONFIG (2) with the reason.
GATEWAY_PORT_IN_USE = 4
