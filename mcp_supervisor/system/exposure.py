"""A backend's exposure score, in the spirit of `systemd-analyze security`: 0 fully confined, 10 not confined at all.

Pure: computed from what the plan enforces (the `measures` its account records, `enforcement.py`), never from
what was asked. Each factor has a weight (the weights add up to 10) and an exposure between 0 and 1: the lowest
that one of the measures in place gives it (1 when none applies). The score is the weighted sum, rounded to 0.1.
Adding a measure can only lower a factor, so the score is monotone. docs/sandbox.md ("Exposure score") documents
the scale; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Measures a plan can record (Account.measure); the planner names them, this module weighs them.
NET_NONE = "net:none"  # own network namespace without interfaces
NET_NAMESPACE = "net:namespace"  # own network namespace with a user-mode stack (egress, no host loopback)
NET_TCP_DENIED = "net:tcp-denied"  # Landlock refuses TCP bind and connect (UDP and unix sockets still work)
NET_HOST_SCOPED = "net:host-scoped"  # the host's network, its abstract unix sockets refused (Landlock scope)
FS_MOUNT_NS = "fs:mount-ns"  # own mount namespace: the system read-only plus what is granted, nothing else
FS_LANDLOCK = "fs:landlock"  # Landlock rules only: the host's /tmp, unix sockets under granted trees reachable
PID_NS = "pid:ns"  # own pid namespace
PID_LANDLOCK = "pid:landlock"  # /proc limited to its own pid, ptrace refused; other pids can be probed
USER_NS = "user:ns"  # own user namespace, nested ones refused
CAPS_DROPPED = "caps:dropped"  # no capabilities, no_new_privs (setuid binaries gain nothing)
NO_NEW_PRIVS = "caps:no-new-privs"  # no_new_privs only (capabilities of uid 0 kept)
UNPRIVILEGED = "uid:unprivileged"  # not uid 0 (whose files the read-only system shows with owner's rights)
MEMORY = "limit:memory"
PIDS = "limit:pids"
CPU = "limit:cpu"


@dataclass(frozen=True)
class Factor:
    name: str
    weight: float
    # measure -> exposure left in this factor when the measure is in place (the lowest applies)
    reduced_by: Mapping[str, float]
    what: str


FACTORS = (
    Factor(
        "network",
        3.5,
        {NET_NONE: 0.0, NET_NAMESPACE: 0.1, NET_TCP_DENIED: 0.4, NET_HOST_SCOPED: 0.9},
        "the host's network shared: its loopback services (the gateway, databases), link-local, the LAN",
    ),
    Factor(
        "filesystem", 2.5, {FS_MOUNT_NS: 0.0, FS_LANDLOCK: 0.3}, "the host's files beyond the system and the grants"
    ),
    Factor("processes", 1.0, {PID_NS: 0.0, PID_LANDLOCK: 0.5}, "other processes: their /proc, signals"),
    Factor("user namespace", 0.7, {USER_NS: 0.0}, "nested user namespaces: the kernel's largest surface"),
    Factor("capabilities", 0.8, {CAPS_DROPPED: 0.0, NO_NEW_PRIVS: 0.5}, "capabilities, setuid binaries"),
    Factor("uid", 0.5, {UNPRIVILEGED: 0.0}, "runs as uid 0: root-owned files shown read-only are readable"),
    Factor("memory limit", 0.4, {MEMORY: 0.0}, "no memory limit: can exhaust the host's memory"),
    Factor("pids limit", 0.4, {PIDS: 0.0}, "no pids limit: can fork-bomb the host"),
    Factor("cpu limit", 0.2, {CPU: 0.0}, "no CPU limit: can take every core"),
)
MAX_SCORE = 10.0


@dataclass(frozen=True)
class Exposure:
    score: float  # 0..10, one decimal
    factors: dict[str, float]  # factor name -> points it adds (its weight times its exposure), one decimal


def exposure(measures: Iterable[str]) -> Exposure:
    """The score of a plan that enforces `measures` (unknown names are ignored)."""
    present = set(measures)
    points: dict[str, float] = {}
    for factor in FACTORS:
        left = min((value for measure, value in factor.reduced_by.items() if measure in present), default=1.0)
        points[factor.name] = factor.weight * left
    score = min(MAX_SCORE, sum(points.values()))
    return Exposure(round(score, 1), {name: round(value, 2) for name, value in points.items()})


def measures_of(measures: Iterable[str], enforced: Mapping[str, str], gaps: Mapping[str, str]) -> list[str]:
    """The measures, plus those read from the per-feature account: a network that is enforced with no gap is a
    namespace of its own (how the network part of the planner reports it)."""
    found = list(dict.fromkeys(measures))
    if "network" in enforced and "network" not in gaps and NET_NONE not in found and NET_NAMESPACE not in found:
        found.append(NET_NAMESPACE)
    return found
