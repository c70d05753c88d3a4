"""What differs between the gateway's slot and a worker's (supervisor/slots.py): the state machine asks the slot,
never which kind it has, so each difference is checked here on the slot itself."""

from __future__ import annotations

from mcp_supervisor.config.models import ServerEntry, Supervision
from mcp_supervisor.protocol.exit_codes import EXIT_CONFIG, EXIT_FAILURE, GATEWAY_PORT_IN_USE
from mcp_supervisor.supervisor.slots import FATAL, RUNNING, STARTING, STOPPED, GatewaySlot, WorkerSlot, policy_for


def _gateway(stdio: bool = False) -> GatewaySlot:
    options = Supervision()
    return GatewaySlot("gateway", options, policy_for(options), stdio=stdio, address="port 8080 on 127.0.0.1")


def _worker(entry: ServerEntry | None = None) -> WorkerSlot:
    options = Supervision()
    entry = entry or ServerEntry(key="k", type="stdio", command="true")
    return WorkerSlot("k", options, policy_for(options), entry=entry)


def test_a_gateway_whose_port_is_taken_ends_the_tree_with_the_config_exit_code() -> None:
    gateway = _gateway()
    assert gateway.final_exit(GATEWAY_PORT_IN_USE) == EXIT_CONFIG
    assert gateway.state == FATAL and gateway.last_error == "port 8080 on 127.0.0.1 is in use"


def test_a_stdio_gateway_that_exits_cleanly_ends_the_tree_and_an_http_one_is_restarted() -> None:
    stdio = _gateway(stdio=True)
    assert stdio.final_exit(0) == 0 and stdio.state == STOPPED
    assert _gateway().final_exit(0) is None  # a crash like any other: restarted under the policy
    assert _gateway(stdio=True).final_exit(1) is None


def test_a_worker_exit_never_ends_the_tree() -> None:
    worker = _worker()
    assert worker.final_exit(GATEWAY_PORT_IN_USE) is None and worker.final_exit(0) is None
    assert worker.fatal_exit_code is None  # FATAL: retried after its cool-down
    assert _gateway().fatal_exit_code == EXIT_FAILURE


def test_each_kind_starts_reports_and_is_watched_as_before() -> None:
    gateway, worker = _gateway(), _worker(ServerEntry(key="k", type="http", url="http://127.0.0.1:1/mcp"))
    assert (gateway.started_state, worker.started_state) == (RUNNING, STARTING)
    assert (gateway.stderr_role, worker.stderr_role) == ("own", "worker")
    assert (gateway.label, worker.label) == ("gateway", "worker[k]")
    assert (gateway.status().type, worker.status().type) == ("gateway", "http")
    assert gateway.publishes("sample") and not gateway.publishes("exited")
    assert worker.publishes("exited") and worker.publishes("sample")
    assert worker.watched and not gateway.watched  # the gateway: only once it has beaten
    gateway.heartbeat_seen = True
    assert gateway.watched
