"""`sandbox.network` (issue 22): its validation, and the plan and account it gives (system/network.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgspec
import pytest

from mcp_supervisor.system.network import BLOCK_FD, INFO_FD, RESOLV_FD
from mcp_supervisor.system.probe import BwrapSupport
from mcp_supervisor.system.sandbox import SandboxUnavailable
from mcp_supervisor.system.sandbox_policy import NetworkPolicy, SandboxPolicy, parse_destination
from tests.unit.test_sandbox_plan import FULL, NO_BWRAP, SHARED, backend_cgroup, index_of, plan, split, state

__all__ = ["state"]  # the fixture, imported for the tests below


def decode(text: str) -> SandboxPolicy:
    return msgspec.json.decode(text.encode(), type=SandboxPolicy)


def test_the_forms_of_network_decode() -> None:
    assert decode('{"network": true}').network is True and decode('{"network": false}').network is False
    both = decode('{"network": {"allow": ["example.com:443", "10.0.0.0/8", "[2001:db8::1]:80"], "hostPorts": [5432]}}')
    assert both.network == NetworkPolicy(
        allow=("example.com:443", "10.0.0.0/8", "[2001:db8::1]:80"), host_ports=(5432,)
    )
    assert decode('{"network": {"hostPorts": [5432]}}').network == NetworkPolicy(host_ports=(5432,))
    assert parse_destination("10.0.0.0/8:5432") == ("10.0.0.0/8", 5432)
    assert parse_destination("2001:db8::/32") == ("2001:db8::/32", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"network": "yes"}', "Expected `bool | object`"),
        ('{"network": {"allow": ["not a host"]}}', "neither an IP address"),
        ('{"network": {"allow": ["db:99999"]}}', "port must be a number from 1 to 65535"),
        ('{"network": {"allow": ["[::1]443"]}}', "expected ]:PORT"),
        ('{"network": {"hostPorts": [0]}}', "hostPorts[0]"),
        ('{"network": {"hostports": [5432]}}', "unknown field `hostports`"),
        ('{"network": {"allow": "10.0.0.0/8"}}', "Expected `array | null`"),
    ],
)
def test_bad_network_values_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode(text)


def test_the_default_is_a_namespace_of_its_own_wired_by_the_worker(state: Path) -> None:
    result = plan(state)
    parts = split(result)
    assert index_of(parts.bwrap, "--unshare-net", "--info-fd", INFO_FD, "--block-fd", BLOCK_FD) >= 0
    assert index_of(parts.bwrap, "--ro-bind-data", RESOLV_FD, "/etc/resolv.conf") > parts.bwrap.index("/etc")
    assert result.network is not None and not result.network.restrict and result.network.host_ports == ()
    assert "own network namespace" in result.enforced["network"] and "network" not in result.not_enforced
    assert parts.shell_stage  # no Landlock scope needed: abstract unix sockets are per network namespace


def test_allow_with_ports_adds_a_landlock_connect_allowlist(state: Path) -> None:
    policy = SandboxPolicy(network=NetworkPolicy(allow=("10.1.2.3:443", "db.example:5432"), host_ports=(6379,)))
    result = plan(state, policy=policy)
    assert result.network is not None and result.network.restrict
    assert result.network.allow == ("10.1.2.3", "db.example") and result.network.host_ports == (6379,)
    outer = split(result).outer
    assert outer.connect_ports == [443, 5432, 6379] and not outer.filesystem and not outer.scope
    assert "TCP connect only to port(s) 443, 5432, 6379" in result.enforced["network"]


def test_allow_without_ports_on_some_entries_filters_no_port(state: Path) -> None:
    result = plan(state, policy=SandboxPolicy(network=NetworkPolicy(allow=("10.0.0.0/8", "example.com:443"))))
    assert (
        split(result).outer.connect_ports == [] and "some allow entries name no port" in result.not_enforced["network"]
    )
    old = dataclasses.replace(FULL, landlock_abi=3)
    with pytest.raises(SandboxUnavailable, match="Landlock ABI 3 < 4"):
        plan(state, host=old, mode="required", policy=SandboxPolicy(network=NetworkPolicy(allow=("a.example:1",))))


def test_an_empty_allow_means_no_egress_and_host_ports_alone_keep_it(state: Path) -> None:
    closed = plan(state, policy=SandboxPolicy(network=NetworkPolicy(allow=(), host_ports=(5432,))))
    assert (
        closed.network is not None
        and closed.network.restrict
        and "egress only to nothing" in closed.enforced["network"]
    )
    open_ = plan(state, policy=SandboxPolicy(network=NetworkPolicy(host_ports=(5432,))))
    assert open_.network is not None and not open_.network.restrict and "5432" in open_.enforced["network"]


def test_slirp4netns_joins_the_backends_cgroup(state: Path) -> None:
    from tests.unit.test_sandbox_plan import CGROUP_V2

    result = plan(state, policy=SandboxPolicy(memory_mb=64), cgroup=backend_cgroup(CGROUP_V2))
    assert result.network is not None and result.network.cgroup_procs == tuple(split(result).outer.cgroup_procs)


def test_without_the_user_mode_stack_the_host_network_is_shared_and_said(state: Path) -> None:
    result = plan(state, host=SHARED)
    assert result.network is None and "--unshare-net" not in split(result).bwrap
    assert "host network shared: slirp4netns is not installed" in result.not_enforced["network"]
    with pytest.raises(SandboxUnavailable, match="network"):
        plan(state, host=SHARED, mode="required")
    no_userns = dataclasses.replace(FULL, bwrap=BwrapSupport("/usr/bin/bwrap", userns=False))
    assert "cannot make a user namespace" in plan(state, host=no_userns).not_enforced["network"]
    landlock_only = plan(state, host=NO_BWRAP)
    assert "no network namespace" in landlock_only.not_enforced["network"] and landlock_only.network is None


def test_network_false_needs_no_user_mode_stack(state: Path) -> None:
    result = plan(state, host=SHARED, mode="required", policy=SandboxPolicy(network=False))
    assert result.network is None and "without interfaces" in result.enforced["network"]
