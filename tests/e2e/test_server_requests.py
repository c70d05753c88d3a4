"""Server→client requests through the gateway: sampling, elicitation, roots — and who gets them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CreateMessageResult, ElicitResult, ListRootsResult, Root, TextContent

from tests.e2e.conftest import RunningSupervisor, write_config
from tests.e2e.test_aggregation import catalog_entry

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def catalog(tmp_path: Path, supervisor_factory: Any) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    # Its tools ask the client with server->client requests, which the 2026-07-28 era does not have.
    write_config(config_dir, {"cat": catalog_entry("cat", protocol="legacy")})
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({"cat"})
    return sup


def client_for(url: str, who: str, seen: list[str], able: bool = True) -> Any:
    """A context manager yielding an initialized SDK client whose callbacks answer as `who`."""

    async def sampling(context: Any, params: Any) -> CreateMessageResult:
        prompt = params.messages[0].content.text
        seen.append(f"sampling:{prompt}")
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text=f"{who} on {prompt}"), model="fake"
        )

    async def elicitation(context: Any, params: Any) -> ElicitResult:
        seen.append(f"elicitation:{params.message}")
        return ElicitResult(action="accept", content={"colour": f"{who}-blue"})

    async def roots(context: Any) -> ListRootsResult:
        seen.append("roots")
        return ListRootsResult(roots=[Root(uri=f"file:///{who}")])

    class Client:
        async def __aenter__(self) -> ClientSession:
            self._http = httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=60.0))
            self._transport = streamable_http_client(url, http_client=self._http)
            read, write = await self._transport.__aenter__()
            callbacks: dict[str, Any] = (
                {"sampling_callback": sampling, "elicitation_callback": elicitation, "list_roots_callback": roots}
                if able
                else {}
            )
            self._session = ClientSession(read, write, **callbacks)
            session = await self._session.__aenter__()
            await session.initialize()
            return session

        async def __aexit__(self, *exc: object) -> None:
            await self._session.__aexit__(*exc)
            await self._transport.__aexit__(*exc)
            await self._http.aclose()

    return Client()


def text(result: Any) -> str:
    return str(result.content[0].text)


async def ann_and_bob_concurrently(
    ann: ClientSession, bob: ClientSession, rounds: int, call: Callable[[ClientSession, str], Awaitable[None]]
) -> None:
    """`call(client, "<who>-<round>")` for `rounds` rounds, each client sequentially, both at once."""

    async def run(client: ClientSession, who: str) -> None:
        for round_ in range(rounds):
            await call(client, f"{who}-{round_}")

    async with anyio.create_task_group() as group:
        group.start_soon(run, ann, "ann")
        group.start_soon(run, bob, "bob")


async def test_sampling_elicitation_and_roots_reach_the_client(catalog: RunningSupervisor) -> None:
    seen: list[str] = []
    async with client_for(catalog.url, "ann", seen) as client:
        assert text(await client.call_tool("cat--ask_llm", {"prompt": "hi"})) == "llm said: ann on hi"
        assert text(await client.call_tool("cat--ask_user", {"question": "colour?"})) == "accept: ann-blue"
        assert text(await client.call_tool("cat--roots", {})) == "file:///ann"
    assert seen == ["sampling:hi", "elicitation:colour?", "roots"]


async def test_a_client_without_the_capability_gets_an_error_not_a_hang(catalog: RunningSupervisor) -> None:
    seen: list[str] = []
    async with client_for(catalog.url, "bob", seen, able=False) as client:
        with anyio.fail_after(15):
            result_or_error: Any
            try:
                result_or_error = await client.call_tool("cat--ask_llm", {"prompt": "hi"})
            except MCPError as exc:
                result_or_error = exc
        # The backend's tool failed on the error the gateway gave it, and said so.
        assert "sampling" in str(getattr(result_or_error, "content", result_or_error))
    assert seen == []


async def test_two_clients_each_get_only_their_own_sampling(catalog: RunningSupervisor) -> None:
    seen_a: list[str] = []
    seen_b: list[str] = []
    results: dict[str, str] = {}
    async with client_for(catalog.url, "ann", seen_a) as a, client_for(catalog.url, "bob", seen_b) as b:

        async def ask(client: ClientSession, prompt: str) -> None:
            results[prompt] = text(await client.call_tool("cat--ask_llm", {"prompt": prompt}))

        await ann_and_bob_concurrently(a, b, 5, ask)
    assert all(f"sampling:ann-{i}" in seen_a for i in range(5)) and not any("bob" in s for s in seen_a)
    assert all(f"sampling:bob-{i}" in seen_b for i in range(5)) and not any("ann" in s for s in seen_b)
    assert results == {f"{w}-{i}": f"llm said: {w} on {w}-{i}" for w in ("ann", "bob") for i in range(5)}


async def test_interactive_tools_are_learnt_and_take_turns(catalog: RunningSupervisor) -> None:
    """Nothing in this tool's sampling request names its caller, so concurrent calls from two sessions could
    only be guessed. One unambiguous call teaches the gateway the tool is interactive; then calls to it take
    turns at the backend and every sampling request reaches the session that caused it."""
    seen_a: list[str] = []
    seen_b: list[str] = []
    results: dict[str, str] = {}
    async with client_for(catalog.url, "ann", seen_a) as a, client_for(catalog.url, "bob", seen_b) as b:
        first = text(await a.call_tool("cat--ask_llm_blind", {"ticket": "warm-up"}))
        assert first == "warm-up: ann on Pick a colour."

        async def ask(client: ClientSession, ticket: str) -> None:
            results[ticket] = text(await client.call_tool("cat--ask_llm_blind", {"ticket": ticket}))

        await ann_and_bob_concurrently(a, b, 4, ask)
    assert results == {f"{w}-{i}": f"{w}-{i}: {w} on Pick a colour." for w in ("ann", "bob") for i in range(4)}
    assert len(seen_a) == 5 and len(seen_b) == 4
    assert "ask_llm_blind asks the client things" in catalog.log_path.read_text()
