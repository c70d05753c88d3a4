"""Run one planned sandbox argv whose plan has a network namespace of its own, and exit with its status.

`python -I -m mcp_supervisor.system.run_planned '<json: argv, network>'`. The supervisor's package fetches
(supervisor/package_step.py) need the backend's network, which a process wires while bwrap waits
(system/netns.py): slirp4netns, a forked child that sets the routes, their waits. In the supervisor itself those
children would be reaped by its own SIGCHLD reaper; this process owns them instead, and the supervisor reaps
only it. stdio is inherited: the fetch's output reaches the supervisor as before.
"""

from __future__ import annotations

import asyncio
import sys

import msgspec

from mcp_supervisor.system.launch import EXIT_LAUNCH_FAILED
from mcp_supervisor.system.netns import exec_planned
from mcp_supervisor.system.network import NetworkSetup


class PlannedRun(msgspec.Struct, frozen=True):
    argv: tuple[str, ...]
    network: NetworkSetup


def command(argv: list[str], network: NetworkSetup) -> list[str]:
    """The argv that runs `argv` through this module (with the interpreter running now)."""
    payload = msgspec.json.encode(PlannedRun(tuple(argv), network)).decode()
    return [sys.executable, "-I", "-m", "mcp_supervisor.system.run_planned", payload]


async def _run(planned: PlannedRun) -> int:
    process, network = await exec_planned(planned.argv, planned.network)
    try:
        return await process.wait()
    finally:
        if network is not None:
            network.close()


def main() -> int:
    planned = msgspec.json.decode(sys.argv[1], type=PlannedRun)
    try:
        code = asyncio.run(_run(planned))
    except Exception as exc:  # one sentence in the fetch's output, as a failed exec would give
        print(f"mcp-supervisor: the sandbox's network could not be set up: {exc}", file=sys.stderr)
        return EXIT_LAUNCH_FAILED
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
