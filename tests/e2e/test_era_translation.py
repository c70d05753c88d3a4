"""Translation between the eras, legacy backend → modern client: the Node server-everything (handshake-only)
asks its client for sampling and elicitation during a tools/call; a 2026-07-28 client cannot receive such a
request, so the gateway holds it and answers with an InputRequiredResult, and the client's retry resumes it.

Before this work the modern client could not reach the gateway at all (400, no session); the translation is
new ground (the SDK's own servers fail a legacy-style request in modern mode).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CreateMessageResult, ElicitResult, TextContent

from tests.e2e.conftest import ROOT, RunningSupervisor, write_config
from tests.e2e.test_modern_clients import ENVELOPE, MODERN, post, routing
from tests.e2e.test_server_everything import ELICIT, ELICITED, SAMPLE, require_everything, tapped_backend, wire
from tests.helpers import async_wait_until, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TOOL = f"everything--{SAMPLE}"


def start(tmp_path: Path, supervisor_factory: Any, **env: str) -> RunningSupervisor:
    require_everything()
    config_dir = tmp_path / "config"
    (tmp_path / "tap").mkdir()
    write_config(config_dir, {"everything": tapped_backend(tmp_path / "tap")})
    sup: RunningSupervisor = supervisor_factory(config_dir, env)
    sup.wait_linked({"everything"})
    return sup


async def wait_for_tool(client: Client, name: str) -> None:
    """The sampling tools appear once the backend saw the gateway's (the worker's) capabilities."""

    async def listed() -> bool:
        return name in {tool.name for tool in (await client.list_tools()).tools}

    await async_wait_until(listed, 25, interval=0.2, what=name)


async def test_a_modern_client_answers_a_legacy_backends_sampling_and_elicitation(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    sup = start(tmp_path, supervisor_factory)
    sampled: list[str] = []
    elicited: list[str] = []

    async def sampling(context: Any, params: Any) -> CreateMessageResult:
        sampled.append(params.messages[0].content.text)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="sampled!"), model="m")

    async def elicitation(context: Any, params: Any) -> ElicitResult:
        elicited.append(params.message)
        return ElicitResult(action="accept", content=dict(ELICITED))

    with anyio.fail_after(90):
        async with Client(sup.url, mode=MODERN, sampling_callback=sampling, elicitation_callback=elicitation) as client:
            await wait_for_tool(client, TOOL)
            result = await client.call_tool(TOOL, {"prompt": "the sea", "maxTokens": 20})
            text = result.content[0].text  # type: ignore[union-attr]
            assert text.startswith("LLM sampling result"), text
            assert json.loads(text.split("\n", 1)[1])["content"]["text"] == "sampled!"
            assert sampled == [f"Resource {SAMPLE} context: the sea"]
            result = await client.call_tool(f"everything--{ELICIT}", {})
            assert "User provided the requested information" in result.content[0].text  # type: ignore[union-attr]
            assert elicited == ["Please provide inputs for the following fields:"]


async def test_a_modern_client_without_the_capability_gets_the_backends_answer(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    """The backend's sampling request gets what a client without sampling answers (-32601, Method not found),
    and the call goes on: the client gets whatever the backend makes of it, as a direct client would (before
    issue 23 the gateway failed the call with -32021 instead)."""
    sup = start(tmp_path, supervisor_factory)

    async def sampling(context: Any, params: Any) -> CreateMessageResult:
        raise AssertionError("never asked")

    # Listed with a sampling-capable client (the tool exists), called by one that declares nothing.
    with anyio.fail_after(60):
        async with Client(sup.url, mode=MODERN, sampling_callback=sampling) as able:
            await wait_for_tool(able, TOOL)
        async with Client(sup.url, mode=MODERN) as unable:
            result = await unable.call_tool(TOOL, {"prompt": "x", "maxTokens": 5})
    text = "".join(getattr(block, "text", "") for block in result.content)
    assert result.is_error and "Method not found" in text, result


def call(request_id: int, state: str | None = None, responses: dict[str, Any] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": TOOL, "arguments": {"prompt": "p", "maxTokens": 5}}
    params["_meta"] = {**ENVELOPE, "io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}
    if state is not None:
        params["requestState"] = state
    if responses is not None:
        params["inputResponses"] = responses
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


ANSWER = {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}


async def first_round(http: httpx2.AsyncClient, url: str, key: str) -> dict[str, Any]:
    async def listed() -> bool:
        body = {"jsonrpc": "2.0", "id": 0, "method": "tools/list", "params": {"_meta": call(0)["params"]["_meta"]}}
        response = await post(http, url, body, **routing("tools/list"), **{"x-api-key": key})
        return TOOL in {tool["name"] for tool in response.json()["result"]["tools"]}

    await async_wait_until(listed, 25, interval=0.2, what=TOOL)
    response = await post(http, url, call(1), **routing("tools/call", TOOL), **{"x-api-key": key})
    result: dict[str, Any] = response.json()["result"]
    assert result["resultType"] == "input_required", result
    return result


async def test_the_request_state_is_sealed_bound_to_the_principal_and_single_use(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    sup = start(tmp_path, supervisor_factory, ALLOWED_KEYS="ann-key,bob-key")
    async with httpx2.AsyncClient(timeout=30) as http:
        held = await first_round(http, sup.url, "ann-key")
        ((input_key, request),) = held["inputRequests"].items()
        assert request["method"] == "sampling/createMessage"
        state = held["requestState"]
        headers = {**routing("tools/call", TOOL)}

        async def retry(key: str, token: str) -> dict[str, Any]:
            response = await post(http, sup.url, call(2, token, {input_key: ANSWER}), **headers, **{"x-api-key": key})
            body: dict[str, Any] = response.json()
            return body

        # Another principal, and a forged state, are refused; the held request stays for its owner.
        assert (await retry("bob-key", state))["error"]["code"] == -32602
        tampered = state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB")
        assert (await retry("ann-key", tampered))["error"]["code"] == -32602
        done = await retry("ann-key", state)
        assert done["result"]["resultType"] == "complete", done
        assert done["result"]["content"][0]["text"].startswith("LLM sampling result")
        # Used once: a replay finds nothing held.
        assert (await retry("ann-key", state))["error"]["code"] == -32602


async def test_a_held_request_expires_and_the_backend_is_told(tmp_path: Path, supervisor_factory: Any) -> None:
    sup = start(tmp_path, supervisor_factory, INPUT_REQUIRED_TIMEOUT_SECONDS="1", ALLOWED_KEYS="ann-key")
    async with httpx2.AsyncClient(timeout=30) as http:
        held = await first_round(http, sup.url, "ann-key")
        into_backend = tmp_path / "tap" / "in.jsonl"
        from_backend = tmp_path / "tap" / "out.jsonl"
        backend_ids = [m["id"] for m in wire(from_backend) if m.get("method") == "sampling/createMessage"]
        assert len(backend_ids) == 1

        def told() -> list[str]:
            seen = wire(into_backend)
            errored = [m for m in seen if m.get("id") == backend_ids[0] and "error" in m]
            cancelled = [m for m in seen if m.get("method") == "notifications/cancelled"]
            return ["error", "cancelled"] if errored and cancelled else []

        # The client never comes back: its held request fails at the backend, and the call is cancelled.
        wait_until(told, 20, interval=0.1, what="the backend to get an error and a cancellation")
        (input_key,) = held["inputRequests"]
        late = call(2, held["requestState"], {input_key: ANSWER})
        response = await post(http, sup.url, late, **routing("tools/call", TOOL), **{"x-api-key": "ann-key"})
        assert response.json()["error"]["code"] == -32602


# ---------------------------------------------------------------------------- modern backend

MODERN_ONLY = str(ROOT / "tests" / "fixtures" / "modern_only_server.py")


def modern_gateway(tmp_path: Path, supervisor_factory: Any, **env: str) -> RunningSupervisor:
    config_dir = tmp_path / "config"
    write_config(config_dir, {"m": {"type": "stdio", "command": sys.executable, "args": [MODERN_ONLY]}})
    sup: RunningSupervisor = supervisor_factory(config_dir, env)
    sup.wait_linked({"m"})
    return sup


async def test_a_legacy_client_answers_a_modern_backends_input_requests(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    """The backend returns an InputRequiredResult; the handshake-era client gets real requests on its call's
    stream, and the call's result once the gateway retried with the answers."""
    sup = modern_gateway(tmp_path, supervisor_factory)
    asked: list[str] = []

    async def sampling(context: Any, params: Any) -> CreateMessageResult:
        asked.append(f"sampling:{params.messages[0].content.text}")
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="forty-two"), model="m")

    async def elicitation(context: Any, params: Any) -> ElicitResult:
        asked.append(f"elicitation:{params.message}")
        return ElicitResult(action="accept", content={"name": "Ada"})

    with anyio.fail_after(60):
        async with Client(sup.url, mode="legacy", sampling_callback=sampling, elicitation_callback=elicitation) as c:
            assert c.protocol_version == "2025-11-25"
            llm = await c.call_tool("m--ask_llm", {"prompt": "meaning?"})
            assert llm.content[0].text == "The model said: forty-two"  # type: ignore[union-attr]
            user = await c.call_tool("m--ask_user", {"question": "Who are you?"})
            assert user.content[0].text == "Hello, Ada!"  # type: ignore[union-attr]
        # Without the capability: the backend itself refuses (-32021), told by the envelope the gateway added.
        async with Client(sup.url, mode="legacy") as unable:
            with pytest.raises(MCPError) as refused:
                await unable.call_tool("m--ask_llm", {"prompt": "x"})
            assert refused.value.error.code == -32021
    assert asked == ["sampling:meaning?", "elicitation:Who are you?"]


async def test_a_modern_backends_request_state_is_wrapped_and_bound_to_the_principal(
    tmp_path: Path, supervisor_factory: Any
) -> None:
    """Modern client, modern backend: the InputRequiredResult passes through, its requestState sealed by the
    gateway (the backend sees every client as one); another principal cannot use it; the owner's retry works."""
    sup = modern_gateway(tmp_path, supervisor_factory, ALLOWED_KEYS="ann-key,bob-key")
    tool = "m--ask_user"
    meta = {**ENVELOPE, "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}

    def ask(request_id: int, **extra: Any) -> dict[str, Any]:
        params = {"name": tool, "arguments": {"question": "Name?"}, "_meta": meta, **extra}
        return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}

    headers = routing("tools/call", tool)
    async with httpx2.AsyncClient(timeout=30) as http:
        first = (await post(http, sup.url, ask(1), **headers, **{"x-api-key": "ann-key"})).json()["result"]
        assert first["resultType"] == "input_required" and list(first["inputRequests"]) == ["answer"]
        state = first["requestState"]
        assert state.startswith("mcps1.")  # the gateway's seal around the backend's own state
        answer = {"answer": {"action": "accept", "content": {"name": "Ann"}}}
        stolen = await post(
            http, sup.url, ask(2, requestState=state, inputResponses=answer), **headers, **{"x-api-key": "bob-key"}
        )
        assert stolen.json()["error"]["code"] == -32602
        done = await post(
            http, sup.url, ask(3, requestState=state, inputResponses=answer), **headers, **{"x-api-key": "ann-key"}
        )
        assert done.json()["result"]["content"][0]["text"] == "Hello, Ann!"

    # The SDK client drives the same rounds by itself.
    async def elicitation(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"name": "Sdk"})

    async with httpx2.AsyncClient(headers={"x-api-key": "ann-key"}, timeout=30) as http:
        transport = streamable_http_client(sup.url, http_client=http)
        async with Client(transport, mode=MODERN, elicitation_callback=elicitation) as client:
            result = await client.call_tool(tool, {"question": "Name?"})
            assert result.content[0].text == "Hello, Sdk!"  # type: ignore[union-attr]
