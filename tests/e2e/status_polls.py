"""Polling a running tree's backend states over /health/backends, without blocking the test's event loop."""

from __future__ import annotations

from typing import Any

import httpx2

from tests.e2e.conftest import RunningSupervisor
from tests.helpers import async_wait_until

POLL_S = 0.02


async def statuses(http: httpx2.AsyncClient, sup: RunningSupervisor) -> dict[str, dict[str, Any]]:
    """`/health/backends` without blocking the event loop (other tasks keep calling meanwhile)."""
    response = await http.get(f"{sup.base}/health/backends", headers=sup.credential, timeout=5)
    response.raise_for_status()
    return {item["key"]: item for item in response.json()["backends"]}


def is_up(status: dict[str, Any] | None, generation: int | None = None) -> bool:
    return bool(
        status
        and status["state"] == "RUNNING"
        and status.get("linked")
        and status.get("pid")
        and (generation is None or status["generation"] == generation)
    )


async def wait_newer(
    sup: RunningSupervisor, key: str, than: int, timeout: float = 20.0, http: httpx2.AsyncClient | None = None
) -> dict[str, Any]:
    """Poll until `key` runs some generation newer than `than`, linked to the gateway."""
    found: dict[str, Any] = {}

    async def up(client: httpx2.AsyncClient) -> bool:
        status = (await statuses(client, sup)).get(key)
        if status and status["generation"] > than and is_up(status):
            found.update(status)
            return True
        return False

    async def poll(client: httpx2.AsyncClient) -> None:
        try:
            await async_wait_until(
                lambda: up(client), timeout, interval=POLL_S, what=f"{key} newer than generation {than} RUNNING"
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- supervisor log ---\n{sup.log_tail()}") from None

    if http is not None:
        await poll(http)
    else:
        async with httpx2.AsyncClient() as client:
            await poll(client)
    return found
