"""The pure parts of issue 22's budgets: fair turns, debounced announcements, the notification budget,
coalesced refreshes, and the byte budget of held calls."""

from __future__ import annotations

import asyncio
import json

import pytest

from mcp_supervisor.config.settings import load_settings
from mcp_supervisor.gateway.server.debounce import Debounced
from mcp_supervisor.gateway.server.held_budget import HeldBytes
from mcp_supervisor.gateway.server.turns import FairTurns
from mcp_supervisor.worker.budget import NotificationBudget
from mcp_supervisor.worker.coalesce import Coalesced

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_turns_go_round_robin_across_credentials() -> None:
    turns = FairTurns()
    order: list[str] = []
    release = asyncio.Event()

    async def call(principal: str, name: str) -> None:
        async with turns.turn("b", principal):
            order.append(name)
            if name == "ann-0":
                await release.wait()

    first = asyncio.create_task(call("ann", "ann-0"))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(call("ann", f"ann-{i}")) for i in range(1, 5)]
    await asyncio.sleep(0)
    queued.append(asyncio.create_task(call("bob", "bob-0")))
    queued.append(asyncio.create_task(call("cat", "cat-0")))
    await asyncio.sleep(0)
    assert turns.waiting("b") == 6
    release.set()
    await asyncio.gather(first, *queued)
    # bob waited for ann's turn in progress only, then cat; ann's queue does not go first.
    assert order[:4] == ["ann-0", "bob-0", "cat-0", "ann-1"]
    assert sorted(order) == sorted(["ann-0", "ann-1", "ann-2", "ann-3", "ann-4", "bob-0", "cat-0"])
    assert turns.waiting("b") == 0


async def test_a_cancelled_waiter_neither_holds_nor_loses_the_turn() -> None:
    turns = FairTurns()
    release = asyncio.Event()
    done: list[str] = []

    async def call(principal: str, hold: bool = False) -> None:
        async with turns.turn("b", principal):
            if hold:
                await release.wait()
            done.append(principal)

    holder = asyncio.create_task(call("ann", hold=True))
    await asyncio.sleep(0)
    gone = asyncio.create_task(call("bob"))
    later = asyncio.create_task(call("cat"))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    await asyncio.gather(holder, later)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert done == ["ann", "cat"]


async def test_list_changed_is_debounced_with_a_trailing_edge() -> None:
    sent: list[str] = []
    debounced = Debounced(0.05, sent.append)
    debounced.announce("tools")
    assert sent == ["tools"]  # the first goes out at once
    for _ in range(1000):
        debounced.announce("tools", "prompts")
    assert sent == ["tools"]
    await asyncio.sleep(0.08)
    assert sent == ["tools", "tools", "prompts"]  # merged, at the window's end
    await asyncio.sleep(0.08)
    debounced.announce("resources")
    assert sent[-1] == "resources"  # a quiet window passed: at once again
    debounced.close()


def progress(token: int, value: int) -> bytes:
    params = {"progressToken": token, "progress": value}
    return json.dumps({"jsonrpc": "2.0", "method": "notifications/progress", "params": params}).encode()


def log_line(i: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": i}}).encode()


async def test_the_notification_budget_coalesces_progress_and_drops_logs() -> None:
    sent: list[bytes] = []
    budget = NotificationBudget(sent.append, "noisy", rate=100.0, burst=10)
    for i in range(10_000):
        budget.offer("notifications/progress", progress(7, i))
        budget.offer("notifications/message", log_line(i))
    assert len(sent) == 10  # the burst
    assert budget.dropped > 9000 and budget.coalesced > 9000
    budget.before_reply(7)  # its request is answered: the latest progress goes first
    assert sent[-1] == progress(7, 9999)
    budget.before_reply(7)
    assert len(sent) == 11
    budget.close()


async def test_waiting_progress_drains_as_the_budget_refills() -> None:
    sent: list[bytes] = []
    budget = NotificationBudget(sent.append, "noisy", rate=200.0, burst=1)
    budget.offer("notifications/progress", progress(1, 0))
    for value in range(1, 50):
        budget.offer("notifications/progress", progress(2, value))
    assert sent == [progress(1, 0)]
    await asyncio.sleep(0.05)
    assert sent == [progress(1, 0), progress(2, 49)]
    budget.close()


async def test_refreshes_are_coalesced_one_in_flight_one_pending() -> None:
    runs: list[str] = []
    gate = asyncio.Event()

    async def refresh(kind: str) -> None:
        runs.append(kind)
        await gate.wait()

    coalesced = Coalesced(refresh)
    coalesced.request("tools")
    await asyncio.sleep(0)
    for _ in range(20_000):
        coalesced.request("tools")
    await asyncio.sleep(0)
    assert runs == ["tools"]
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert runs == ["tools", "tools"]  # once more, for the changes that came meanwhile
    coalesced.cancel()


def test_held_bytes_are_bounded_per_credential_and_in_all() -> None:
    budget = HeldBytes(per_credential=10, total=15)
    assert budget.refusal("ann", 10) == ""
    budget.charge("ann", 10)
    assert "HELD_REQUESTS_MB_PER_CREDENTIAL" in budget.refusal("ann", 1)
    assert budget.refusal("bob", 5) == ""
    budget.charge("bob", 5)
    assert "HELD_REQUESTS_MB)" in budget.refusal("cat", 1)  # the gateway's total, though cat holds nothing
    budget.release("ann", 10)
    assert budget.of("ann") == 0 and budget.total == 5
    assert budget.refusal("cat", 1) == ""


def test_budget_settings_have_defaults_and_env_overrides() -> None:
    defaults = load_settings({})
    assert defaults.held_bytes_per_credential == 64 * 1024 * 1024 and defaults.held_bytes == 256 * 1024 * 1024
    assert defaults.list_changed_debounce_s == 0.2
    env = {"HELD_REQUESTS_MB_PER_CREDENTIAL": "8", "HELD_REQUESTS_MB": "32", "LIST_CHANGED_DEBOUNCE_SECONDS": "0"}
    custom = load_settings(env)
    assert (custom.held_bytes_per_credential, custom.held_bytes) == (8 * 1024 * 1024, 32 * 1024 * 1024)
    assert custom.list_changed_debounce_s == 0
