"""Exit codes: the CLI's, and those a child of the supervisor uses to say something more specific than "crashed".

One exception lives elsewhere: the sandbox launcher's 126 (`system/launch.py` EXIT_LAUNCH_FAILED), because the
launcher runs as a bare file (`python -I -S launch.py`) that cannot import this package.
"""

from __future__ import annotations

from typing import Final

# The CLI's (`mcp-supervisor start` exits with them too): 0 ok, 1 runtime failure, 2 configuration error,
# 3 the supervisor cannot be reached.
EXIT_FAILURE: Final = 1
EXIT_CONFIG: Final = 2
EXIT_UNREACHABLE: Final = 3
# The shell's conventions, for a command interrupted (128 + SIGINT) or that could not be started at all.
EXIT_INTERRUPTED: Final = 130
EXIT_NOT_STARTED: Final = 127

# A worker whose backend failed (to start, or later) exits with this, after reporting why to the supervisor.
EXIT_BACKEND_FAILED: Final = 3
# The gateway could not listen on its port (another program has it): restarting would only fail the same way,
# so the supervisor stops the whole tree at once and exits EXIT_CONFIG with the reason.
GATEWAY_PORT_IN_USE: Final = 4
