"""The MCP reference server `@modelcontextprotocol/server-everything` behind the gateway.

One supervisor tree per client transport (`/mcp`, `/sse`, and `mcp-supervisor stdio` launched by the SDK
itself); server-everything runs over stdio behind it (never over HTTP: it binds all interfaces there), with a
`tee` wire tap on both of its pipes so the test can see what the backend was sent and what it answered.
The official SDK client checks, in order: progress, sampling, elicitation, logging, a resource subscription
update, an image and structured content byte-for-byte (compared with the same calls made straight to
server-everything), and a cancelled long-running call.

The server and the Node.js it runs on come from the npm lock (`make npm-tools`, see tests/npm_tools.py).
Without them the test fails (it does not skip).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psutil
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import (
    CallToolResult,
    CreateMessageResult,
    ElicitResult,
    LoggingMessageNotificationParams,
    ProgressNotification,
    ResourceUpdatedNotification,
    TextContent,
)

from tests.e2e.conftest import SUPERVISOR_CMD, RunningSupervisor, alive, write_config
from tests.helpers import async_wait_until
from tests.npm_tools import INSTALL_HINT, NODE, NODE_MODULES, NPM_TOOLS_DIR, installed_version, locked_version

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.e2e,
    # logging/setLevel and resources/subscribe are handshake-era methods: the point here, not a mistake.
    pytest.mark.filterwarnings("ignore::mcp.MCPDeprecationWarning"),
]

PACKAGE = NODE_MODULES / "@modelcontextprotocol" / "server-everything"
SERVER_JS = PACKAGE / "dist" / "index.js"
EVERYTHING_VERSION = locked_version("@modelcontextprotocol/server-everything")

KEY = "everything"
PREFIX = f"{KEY}--"  # the gateway's default prefix, `<key><SEP>`
LONG = "trigger-long-running-operation"
SAMPLE = "trigger-sampling-request"
ELICIT = "trigger-elicitation-request"
IMAGE = "get-tiny-image"
STRUCTURED = "get-structured-content"
TOGGLE_LOGGING = "toggle-simulated-logging"
TOGGLE_UPDATES = "toggle-subscriber-updates"
SUM = "get-sum"
NEEDED = {LONG, SAMPLE, ELICIT, IMAGE, STRUCTURED, TOGGLE_LOGGING, TOGGLE_UPDATES, SUM}

# The cancelled call: one step every 0.3 s, so that the backend writes several after the cancellation, and its
# loop ends soon enough to wait for.
CANCEL_DURATION, CANCEL_STEPS = 3, 10


def require_everything() -> None:
    version = installed_version("@modelcontextprotocol/server-everything")
    if not (NODE.exists() and SERVER_JS.exists()) or version != EVERYTHING_VERSION:
        pytest.fail(
            f"@modelcontextprotocol/server-everything {EVERYTHING_VERSION} and its Node.js are not installed in "
            f"{NPM_TOOLS_DIR} (found version {version}). {INSTALL_HINT}",
            pytrace=False,
        )


def tapped_backend(tap_dir: Path) -> dict[str, Any]:
    """server-everything over stdio, with what goes in and what comes out copied to files by `tee`."""
    script = 'tee -a "$1" | "$2" "$3" stdio | tee -a "$4"'
    return {
        "type": "stdio",
        "command": shutil.which("bash") or "/bin/bash",
        "args": ["-c", script, "tap", str(tap_dir / "in.jsonl"), str(NODE), str(SERVER_JS), str(tap_dir / "out.jsonl")],
        # Under the default sandbox otherwise (the server itself needs nothing more); the tap writes its files.
        "sandbox": {"writePaths": [str(tap_dir)]},
    }


def wire(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines a tap file holds so far."""
    if not path.exists():
        return []
    messages = []
    for line in path.read_bytes().split(b"\n")[:-1]:  # the last piece may be a line still being written
        try:
            messages.append(json.loads(line))
        except ValueError:
            continue
    return messages


def dump(result: CallToolResult) -> dict[str, Any]:
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def texts(result: CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, TextContent)]


@dataclass
class Observed:
    """Everything the client's callbacks saw, in arrival order, with the arrival time."""

    notifications: list[tuple[float, Any]] = field(default_factory=list)
    logs: list[LoggingMessageNotificationParams] = field(default_factory=list)
    sampling: list[Any] = field(default_factory=list)
    elicitation: list[Any] = field(default_factory=list)

    def of(self, kind: type, after: float = 0.0) -> list[Any]:
        return [n for at, n in self.notifications if isinstance(n, kind) and at >= after]


ELICITED = {"name": "Ada Lovelace", "check": True, "email": "ada@example.org", "integer": 7}


def callbacks(observed: Observed) -> dict[str, Any]:
    async def sampling(context: Any, params: Any) -> CreateMessageResult:
        observed.sampling.append(params)
        prompt = params.messages[0].content.text
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text=f"sampled <{prompt}>"), model="test-model"
        )

    async def elicitation(context: Any, params: Any) -> ElicitResult:
        observed.elicitation.append(params)
        return ElicitResult(action="accept", content=dict(ELICITED))

    async def logging(params: LoggingMessageNotificationParams) -> None:
        observed.logs.append(params)

    async def messages(message: Any) -> None:
        observed.notifications.append((time.monotonic(), message))

    return {
        "sampling_callback": sampling,
        "elicitation_callback": elicitation,
        "logging_callback": logging,
        "message_handler": messages,
    }


@dataclass
class Tree:
    """One supervisor tree and where to look when something goes wrong."""

    transport: str
    tap_dir: Path
    log: Callable[[], str]

    def evidence(self) -> str:
        def tail(path: Path, lines: int = 25) -> str:
            if not path.exists():
                return "(none)"
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

        return (
            f"--- supervisor log ({self.transport}) ---\n{self.log()}\n"
            f"--- gateway → backend (tail) ---\n{tail(self.tap_dir / 'in.jsonl')}\n"
            f"--- backend → gateway (tail) ---\n{tail(self.tap_dir / 'out.jsonl')}"
        )

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Name the transport and the step of any failure, with the supervisor log and the wire tap."""
        started = time.monotonic()
        try:
            yield
        except (AssertionError, TimeoutError) as exc:
            raise AssertionError(f"[{self.transport}] step {name!r} failed: {exc!r}\n{self.evidence()}") from exc
        finally:
            print(f"[{self.transport}] {name}: {time.monotonic() - started:.2f} s")  # shown with -s or on failure


@asynccontextmanager
async def gateway_client(
    transport: str, tmp_path: Path, supervisor_factory: Any, observed: Observed
) -> AsyncIterator[tuple[ClientSession, Tree]]:
    """An initialized SDK client on the gateway over `transport`, with a fresh supervisor tree behind it."""
    config_dir = tmp_path / "config"
    tap_dir = tmp_path / "tap"
    tap_dir.mkdir()
    write_config(config_dir, {KEY: tapped_backend(tap_dir)})
    hooks = callbacks(observed)
    if transport == "stdio":
        stderr_path = tmp_path / "stdio-stderr.log"
        params = StdioServerParameters(command=SUPERVISOR_CMD, args=["stdio", "--config-dir", str(config_dir)])

        def stderr_tail() -> str:
            return "\n".join(stderr_path.read_text(errors="replace").splitlines()[-60:])

        tree = Tree(transport, tap_dir, stderr_tail)
        with open(stderr_path, "w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write, **hooks) as client,
            ):
                await client.initialize()
                yield client, tree
        return
    sup: RunningSupervisor = supervisor_factory(config_dir)
    sup.wait_linked({KEY})
    tree = Tree(transport, tap_dir, sup.log_tail)
    if transport == "mcp":
        async with (
            httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=60.0)) as http,
            streamable_http_client(sup.url, http_client=http) as (read, write),
            ClientSession(read, write, **hooks) as client,
        ):
            await client.initialize()
            yield client, tree
    else:
        async with (
            sse_client(f"{sup.base}/sse") as (read, write),
            ClientSession(read, write, **hooks) as client,
        ):
            await client.initialize()
            yield client, tree


async def direct_results(tmp_path: Path) -> tuple[CallToolResult, CallToolResult]:
    """The image and the structured content, asked of server-everything directly (no gateway)."""
    params = StdioServerParameters(command=str(NODE), args=[str(SERVER_JS), "stdio"])
    with open(tmp_path / "direct-stderr.log", "w") as errlog, anyio.fail_after(30):
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            await client.list_tools()  # the SDK validates structured content against the listed output schema
            image = await client.call_tool(IMAGE, {})
            structured = await client.call_tool(STRUCTURED, {"location": "Chicago"})
    return image, structured


@pytest.mark.parametrize("transport", ["mcp", "sse", "stdio"])
async def test_server_everything_through_the_gateway(transport: str, tmp_path: Path, supervisor_factory: Any) -> None:
    require_everything()
    started = time.monotonic()
    direct_image, direct_structured = await direct_results(tmp_path)
    print(f"\n[{transport}] direct calls: {time.monotonic() - started:.2f} s")
    observed = Observed()

    started = time.monotonic()
    async with gateway_client(transport, tmp_path, supervisor_factory, observed) as (client, tree):
        print(f"[{transport}] tree started, client initialized: {time.monotonic() - started:.2f} s")
        # The tools that need sampling/elicitation appear once the backend saw the gateway's capabilities.
        with tree.step("tools/list"):

            async def listed() -> set[str]:
                names = {tool.name for tool in (await client.list_tools()).tools}
                return names if {PREFIX + name for name in NEEDED} <= names else set()

            with anyio.fail_after(30):
                await async_wait_until(listed, 25, interval=0.2, what=f"every tool of {sorted(NEEDED)}")

        with tree.step("progress"):
            progress: list[tuple[float, float | None]] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress.append((value, total))

            with anyio.fail_after(20):
                done = await client.call_tool(
                    PREFIX + LONG, {"duration": 0.5, "steps": 5}, progress_callback=on_progress
                )
                # Progress callbacks run in their own tasks: give the last one its turn.
                await async_wait_until(lambda: len(progress) >= 5, 5, what="five progress callbacks")
            assert texts(done) == ["Long running operation completed. Duration: 0.5 seconds, Steps: 5."]
            assert sorted(progress) == [(float(i), 5.0) for i in range(1, 6)], progress

        with tree.step("sampling"):
            with anyio.fail_after(20):
                sampled = await client.call_tool(PREFIX + SAMPLE, {"prompt": "the sky", "maxTokens": 42})
            assert len(observed.sampling) == 1, observed.sampling
            request = observed.sampling[0]
            asked = f"Resource {SAMPLE} context: the sky"
            assert request.messages[0].content.text == asked
            assert (request.max_tokens, request.system_prompt) == (42, "You are a helpful test server.")
            head = "LLM sampling result: \n"
            assert not sampled.is_error and texts(sampled)[0].startswith(head), dump(sampled)
            answer = json.loads(texts(sampled)[0].removeprefix(head))
            # The tool got the callback's answer, unchanged.
            assert answer == {
                "role": "assistant",
                "content": {"type": "text", "text": f"sampled <{asked}>"},
                "model": "test-model",
            }

        with tree.step("elicitation"):
            with anyio.fail_after(20):
                elicited = await client.call_tool(PREFIX + ELICIT, {})
            assert len(observed.elicitation) == 1, observed.elicitation
            request = observed.elicitation[0]
            assert request.message == "Please provide inputs for the following fields:"
            assert request.requested_schema["required"] == ["name"]
            assert "untitledMultipleSelectEnum" in request.requested_schema["properties"]
            lines = texts(elicited)
            assert lines[0] == "✅ User provided the requested information!", lines
            assert lines[1].splitlines() == [
                "User inputs:",
                "- Name: Ada Lovelace",
                "- Agreed to terms: true",
                "- Email: ada@example.org",
                "- Favorite Integer: 7",
            ]
            raw = json.loads(lines[2].removeprefix("\nRaw result: "))
            assert raw == {"action": "accept", "content": ELICITED}

        # Subscribing makes the backend log an info message; the update notification comes when asked for.
        with tree.step("logging and subscription"):
            uris = [r.uri for r in (await client.list_resources()).resources]
            uri = "demo://resource/static/document/features.md"
            assert uri in uris, uris
            with anyio.fail_after(20):
                await client.set_logging_level("debug")
                await client.subscribe_resource(uri)
                await async_wait_until(
                    lambda: any(
                        f"Received Subscribe Resource request for URI: {uri}" in str(m.data) for m in observed.logs
                    ),
                    10,
                    what="the backend's log message about the subscription",
                )
                subscribed_log = next(m for m in observed.logs if "Subscribe" in str(m.data))
                assert subscribed_log.level == "info"

                # Simulated logging sends one message of a random level at once (then one every 5 s).
                before = len(observed.logs)
                await client.call_tool(PREFIX + TOGGLE_LOGGING, {})
                pattern = re.compile(r"^(Debug|Info|Notice|Warning|Error|Critical|Emergency)-level message$|^Alert")
                await async_wait_until(
                    lambda: any(pattern.match(str(m.data)) for m in observed.logs[before:]),
                    10,
                    what="a simulated log message",
                )
                await client.call_tool(PREFIX + TOGGLE_LOGGING, {})  # off again

                # Simulated updates notify at once for every subscribed URI (then every 5 s).
                await client.call_tool(PREFIX + TOGGLE_UPDATES, {})
                await async_wait_until(
                    lambda: any(n.params.uri == uri for n in observed.of(ResourceUpdatedNotification)),
                    10,
                    what=f"notifications/resources/updated for {uri}",
                )
                await client.call_tool(PREFIX + TOGGLE_UPDATES, {})  # off again
                await client.unsubscribe_resource(uri)

        with tree.step("image and structured content byte-for-byte"):
            with anyio.fail_after(20):
                await client.list_tools()  # the SDK validates structured content against the listed output schema
                image = await client.call_tool(PREFIX + IMAGE, {})
                structured = await client.call_tool(PREFIX + STRUCTURED, {"location": "Chicago"})
            assert dump(image) == dump(direct_image)
            assert dump(structured) == dump(direct_structured)
            blocks = [b for b in dump(image)["content"] if b["type"] == "image"]
            assert len(blocks) == 1 and blocks[0]["mimeType"] == "image/png"
            assert base64.b64decode(blocks[0]["data"]).startswith(b"\x89PNG\r\n\x1a\n")
            assert structured.structured_content == {
                "temperature": 36,
                "conditions": "Light rain / drizzle",
                "humidity": 82,
            }
            # And exactly what the backend wrote on its stdout.
            for result in (image, structured):
                written = [
                    m["result"]
                    for m in wire(tree.tap_dir / "out.jsonl")
                    if isinstance(m.get("result"), dict) and m["result"].get("content") == dump(result)["content"]
                ]
                assert written, f"no backend reply carries the content the client got: {dump(result)}"
                assert written[-1].get("structuredContent") == dump(result).get("structuredContent")

        with tree.step("cancelled long-running call"):
            await cancelled_call_stops(client, tree, observed)
        started = time.monotonic()
    print(f"[{transport}] client closed: {time.monotonic() - started:.2f} s")

    if transport == "stdio":
        # Closing stdin ends the tree: no server-everything of this test outlives it.
        await async_wait_until(lambda: not alive(tap_processes(tmp_path)), 20, what="the stdio tree to exit")


def tap_processes(tmp_path: Path) -> set[int]:
    pids = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any(str(tmp_path) in part for part in proc.info["cmdline"] or ()):
            pids.add(proc.info["pid"])
    return pids


async def cancelled_call_stops(client: ClientSession, tree: Tree, observed: Observed) -> None:
    """Cancel a long-running call client-side and show that the backend dropped it.

    server-everything's long-running tool does not look at its abort signal: its loop keeps sleeping and
    writing progress after a cancellation. What the backend's SDK stops is the request: once
    `notifications/cancelled` for it arrives, its result is never sent. So the test shows, on the wire tap:
    the gateway forwarded the cancellation with the backend-side id of this call, and the backend never
    answered that id, even after its loop ran to the end. At the client: no result, and none of the progress
    the backend wrote after it had taken in the cancellation. That point is marked without timing: once the
    cancellation is on the backend's stdin, a marker call goes to the same backend, which reads its stdin in
    order, so every progress it writes after its reply to the marker was written after the cancellation.
    """
    progress: list[float] = []
    outcome: dict[str, Any] = {}

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def call() -> None:
        outcome["result"] = await client.call_tool(
            PREFIX + LONG, {"duration": CANCEL_DURATION, "steps": CANCEL_STEPS}, progress_callback=on_progress
        )

    started = time.monotonic()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(call)
            await async_wait_until(lambda: len(progress) >= 2, 15, what="two progress notifications of the long call")
            group.cancel_scope.cancel()  # the SDK sends notifications/cancelled for the request

    # The backend got this call, with a gateway-made id and progress token...
    def backend_call() -> dict[str, Any] | None:
        for message in wire(tree.tap_dir / "in.jsonl"):
            params = message.get("params") or {}
            arguments = params.get("arguments") or {}
            if (
                message.get("method") == "tools/call"
                and params.get("name") == LONG
                and arguments.get("duration") == CANCEL_DURATION
            ):
                return message
        return None

    sent = await async_wait_until(backend_call, 10, what="the long call on the backend's stdin")
    backend_id = sent["id"]
    backend_token = sent["params"]["_meta"]["progressToken"]

    # ...then the cancellation for that id.
    def cancellation() -> bool:
        return any(
            m.get("method") == "notifications/cancelled" and (m.get("params") or {}).get("requestId") == backend_id
            for m in wire(tree.tap_dir / "in.jsonl")
        )

    await async_wait_until(cancellation, 10, what=f"notifications/cancelled for backend id {backend_id!r}")

    # The marker: sent after the cancellation reached the backend's stdin, so answered after it was read.
    with anyio.fail_after(10):
        marker = await client.call_tool(PREFIX + SUM, {"a": 20, "b": 22})
    assert texts(marker) == ["The sum of 20 and 22 is 42."], dump(marker)

    def backend_output() -> tuple[list[float], list[float]]:
        """The call's progress the backend wrote before and after its reply to the marker."""
        before: list[float] = []
        after: list[float] = []
        marked = False
        for m in wire(tree.tap_dir / "out.jsonl"):
            if "method" not in m and "The sum of 20 and 22 is 42." in json.dumps(m.get("result")):
                marked = True
            elif m.get("method") == "notifications/progress" and m["params"].get("progressToken") == backend_token:
                (after if marked else before).append(m["params"]["progress"])
        return before, after

    # The backend's loop runs to its last step (it ignores the abort signal)...
    await async_wait_until(
        lambda: CANCEL_STEPS in backend_output()[1], CANCEL_DURATION + 10, what="the backend's loop to end"
    )
    # ...and a later request through the same backend fences whatever it would have written right after.
    with anyio.fail_after(10):
        fence = await client.call_tool(PREFIX + SUM, {"a": 2, "b": 3})
    assert texts(fence) == ["The sum of 2 and 3 is 5."], dump(fence)

    answered = [m for m in wire(tree.tap_dir / "out.jsonl") if m.get("id") == backend_id and "method" not in m]
    assert not answered, f"the backend answered the cancelled call: {answered}"
    assert "result" not in outcome, f"the cancelled call returned: {outcome}"
    written_before, written_after = backend_output()
    assert len(written_after) >= 3, f"the backend wrote only {written_after} after the marker: this proves nothing"
    # The call's progress token at the client is the one its first progress notifications carried.
    tokens = {n.params.progress_token for n in observed.of(ProgressNotification, after=started)}
    relayed = sorted(n.params.progress for n in observed.of(ProgressNotification, after=started))
    assert len(tokens) == 1, f"progress for {tokens}: expected only the cancelled call's token"
    leaked = sorted(set(relayed) & set(written_after))
    assert not leaked, (
        f"progress {leaked} of the cancelled call reached the client although the backend wrote it after taking "
        f"in the cancellation (backend wrote {written_before} before the marker and {written_after} after; the "
        f"client got {relayed})"
    )
