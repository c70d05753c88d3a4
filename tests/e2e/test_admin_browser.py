"""The admin UI in a real browser: Debian's headless Chromium driven by Playwright against `mcp-supervisor start`.

No browser is downloaded: Playwright launches /usr/bin/chromium (`make browser-tools` installs it). Without it
the tests are skipped on a developer machine and fail in CI (env CI set). Every page a test visits is saved as
a full-page screenshot in tests/artifacts/admin-<page>.png, for a person to look at.

Every wait is bounded (Playwright's expect/wait_for with a timeout, or `async_wait_until`); the timeouts are
generous because a loaded 2-core CI machine starts Python backends slowly.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from tests.e2e.conftest import ROOT, RunningSupervisor, stdio_fixture_entry, write_config
from tests.helpers import async_wait_until, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "tests" / "artifacts"
USERNAME = "ui-tester"
# Timeouts in milliseconds (Playwright's unit).
T_UI = 15_000  # a page element reacting to a click
T_BACKEND = 30_000  # a backend process starting, restarting or stopping
T_NAV = 30_000


@pytest.fixture(autouse=True)
def require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    reason = f"{CHROMIUM} is missing: run `make browser-tools` (scripts/install-debian-package.sh)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; in CI the browser tests must run.")
    pytest.skip(reason)


@dataclass
class AdminUI:
    sup: RunningSupervisor
    page: Page
    username: str
    password: str
    tools_folder: Path
    page_errors: list[str] = field(default_factory=list)

    @property
    def admin(self) -> str:
        return f"{self.sup.base}/admin"

    async def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"admin-{name}.png"), full_page=True)

    async def login(self) -> None:
        page = self.page
        await page.goto(f"{self.admin}/login", timeout=T_NAV)
        await page.get_by_test_id("login-username").fill(self.username)
        await page.get_by_test_id("login-password").fill(self.password)
        await page.get_by_test_id("login-submit").click()
        await page.wait_for_url(f"{self.admin}/", timeout=T_NAV)
        await expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=T_UI)
        # the live event stream is open: later events (backend states, install output) cannot be missed
        await expect(page.locator("body")).to_have_attribute("data-sse", "connected", timeout=T_UI)

    async def open_tab(self, name: str) -> None:
        await self.page.get_by_test_id(f"tab-{name}").click()
        await expect(self.page.get_by_test_id(f"page-{name}")).to_be_visible(timeout=T_UI)
        await expect(self.page.get_by_test_id(f"heading-{name}")).to_have_text(name.capitalize())


def running(sup: RunningSupervisor, argv: list[str]) -> list[psutil.Process]:
    """The processes of the supervisor's tree whose command line starts with `argv`."""
    found = []
    for process in sup.tree():
        try:
            if process.cmdline()[: len(argv)] == argv:
                found.append(process)
        except psutil.Error:  # gone meanwhile
            pass
    return found


def servers_file(ui: AdminUI) -> dict[str, Any]:
    return dict(json.loads((ui.sup.config_dir / "mcp_server.json").read_text())["mcpServers"])


@pytest.fixture
async def make_ui(tmp_path: Path, supervisor_factory: Any) -> AsyncIterator[Any]:
    """`await make_ui(servers, wait=set_of_keys)`: a supervisor with the admin UI (and web terminal) on, and a
    fresh headless Chromium (its own profile directory) on its login page. Closed at teardown; the conftest's
    factory then stops the supervisor and checks that its whole process tree is gone."""
    contexts: list[BrowserContext] = []
    uis: list[AdminUI] = []
    async with async_playwright() as playwright:

        async def factory(
            servers: dict[str, Any],
            wait: set[str] | None = None,
            login: bool = True,
            env: dict[str, str] | None = None,
        ) -> AdminUI:
            config_dir = tmp_path / "config"
            tools_folder = tmp_path / "tools"
            tools_folder.mkdir(exist_ok=True)
            write_config(config_dir, servers)
            env = {
                "ENABLE_ADMIN_UI": "true",
                "ADMIN_USERNAME": USERNAME,
                "ADMIN_PASSWORD": secrets.token_urlsafe(12),
                "ENABLE_WEB_TERMINAL": "true",
                "TOOLS_FOLDER": str(tools_folder),
                **(env or {}),
            }
            sup: RunningSupervisor = supervisor_factory(config_dir, env)
            if wait:
                sup.wait_linked(wait)
            context = await playwright.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 900},
            )
            contexts.append(context)
            context.set_default_timeout(T_UI)
            page = context.pages[0] if context.pages else await context.new_page()
            ui = AdminUI(sup, page, env["ADMIN_USERNAME"], env["ADMIN_PASSWORD"], tools_folder)
            page.on("pageerror", lambda exc: ui.page_errors.append(str(exc)))
            uis.append(ui)
            if login:
                await ui.login()
            return ui

        try:
            yield factory
        finally:
            for context in contexts:
                await context.close()
    for ui in uis:
        assert not ui.page_errors, f"JavaScript errors in the admin UI: {ui.page_errors}"


# ---------------------------------------------------------------------------------------------------- login


async def test_login_then_every_page_renders(make_ui: Any) -> None:
    ui: AdminUI = await make_ui({"echo": stdio_fixture_entry("echo")}, wait={"echo"}, login=False)
    page = ui.page

    # without a session the UI itself sends the browser to the login page
    await page.goto(f"{ui.admin}/", timeout=T_NAV)
    await page.wait_for_url(f"{ui.admin}/login", timeout=T_NAV)

    await page.get_by_test_id("login-username").fill(USERNAME)
    await page.get_by_test_id("login-password").fill("not-the-password")
    await page.get_by_test_id("login-submit").click()
    error = page.get_by_test_id("login-error")
    await expect(error).to_be_visible(timeout=T_UI)
    await expect(error).not_to_have_text("")
    assert page.url == f"{ui.admin}/login"
    await ui.shot("login-error")

    await ui.login()
    await expect(page.get_by_test_id("username")).to_have_text(USERNAME)
    await expect(page.get_by_test_id("default-credentials-banner")).to_be_hidden()
    await expect(page.get_by_test_id("tab-terminal")).to_be_visible()  # ENABLE_WEB_TERMINAL=true
    for name in ("servers", "tools", "clients", "health", "installs", "terminal"):
        await ui.open_tab(name)
        assert page.url.endswith(f"#{name}")
        await ui.shot(name)

    # the reload button reports the supervisor's answer
    await page.get_by_test_id("reload-config").click()
    await expect(page.get_by_test_id("reload-message")).to_be_visible(timeout=T_BACKEND)
    await expect(page.get_by_test_id("reload-message")).not_to_have_text("")

    await page.get_by_test_id("logout").click()
    await page.wait_for_url(f"{ui.admin}/login", timeout=T_NAV)
    await ui.shot("login")
    await page.goto(f"{ui.admin}/", timeout=T_NAV)  # the session is gone
    await page.wait_for_url(f"{ui.admin}/login", timeout=T_NAV)


async def test_a_default_password_keeps_the_admin_off_and_says_how_to_fix_it(make_ui: Any) -> None:
    """Issue 22: the default credentials served the admin UI (with a banner); now it stays off until
    ADMIN_PASSWORD is a real password, and the page says how to set one."""
    ui: AdminUI = await make_ui({}, login=False, env={"ADMIN_USERNAME": "admin", "ADMIN_PASSWORD": "password"})
    response = await ui.page.goto(f"{ui.admin}/login", timeout=T_NAV)
    assert response is not None and response.status == 503
    await expect(ui.page.locator("body")).to_contain_text("set ADMIN_PASSWORD")
    await ui.shot("admin-refused")


# ---------------------------------------------------------------------------------------------------- servers


async def test_add_stdio_server_through_the_form_becomes_running(make_ui: Any) -> None:
    kept = {"type": "stdio", "command": sys.executable, "active": False, "comment": "an unknown field, kept"}
    ui: AdminUI = await make_ui({"kept": kept})
    page = ui.page
    await ui.open_tab("servers")
    await expect(page.get_by_test_id("server-state-kept")).to_have_text("INACTIVE")

    # a key the backend refuses: its error is shown inline and nothing is written
    await page.get_by_test_id("server-add").click()
    form = page.get_by_test_id("server-form")
    await expect(form).to_be_visible()
    await page.get_by_test_id("sf-key").fill("../../etc")
    await page.get_by_test_id("sf-command").fill(sys.executable)
    await page.get_by_test_id("server-form-save").click()
    await expect(page.get_by_test_id("server-form-error")).to_be_visible(timeout=T_UI)
    await expect(page.get_by_test_id("server-form-error")).not_to_have_text("")
    assert set(servers_file(ui)) == {"kept"}

    # the fixture backend, typed into the form field by field
    entry = stdio_fixture_entry("added")
    await page.get_by_test_id("sf-key").fill("added")
    await page.get_by_test_id("sf-type").select_option("stdio")
    await page.get_by_test_id("sf-name").fill("Added from the browser")
    await page.get_by_test_id("sf-command").fill(entry["command"])
    await page.get_by_test_id("sf-args").fill("\n".join(entry["args"]))
    await page.get_by_test_id("sf-env").fill("ADDED_BY=browser-test\nEMPTY=")
    await page.get_by_test_id("sf-installCommands").fill("echo one\necho two")
    await page.get_by_test_id("sf-advanced").locator("summary").click()
    # the advanced JSON follows the form
    await expect(page.get_by_test_id("sf-json")).to_have_value(re.compile(r'"ADDED_BY": "browser-test"'))
    await ui.shot("servers-form")
    await page.get_by_test_id("server-form-save").click()
    await expect(form).to_be_hidden(timeout=T_UI)

    await expect(page.get_by_test_id("server-state-added")).to_have_text("RUNNING", timeout=T_BACKEND)
    await expect(page.get_by_test_id("server-pid-added")).to_have_text(re.compile(r"^\d+$"))
    saved = servers_file(ui)["added"]
    assert saved["command"] == entry["command"] and saved["args"] == entry["args"]
    assert saved["env"] == {"ADDED_BY": "browser-test", "EMPTY": ""}
    assert saved["installCommands"] == ["echo one", "echo two"]
    assert saved["name"] == "Added from the browser" and saved["type"] == "stdio"
    await expect(page.get_by_test_id("server-install-added")).to_be_visible()  # it has installCommands
    await ui.shot("servers")

    # editing keeps the fields the form does not know
    await page.get_by_test_id("server-edit-kept").click()
    await expect(page.get_by_test_id("sf-key")).to_have_value("kept")
    await expect(page.get_by_test_id("sf-key")).to_be_disabled()
    await expect(page.get_by_test_id("sf-active")).not_to_be_checked()
    await page.get_by_test_id("sf-name").fill("Kept")
    await page.get_by_test_id("server-form-save").click()
    await expect(form).to_be_hidden(timeout=T_UI)
    assert servers_file(ui)["kept"] == {**kept, "name": "Kept"}

    # delete (the browser's confirm dialog accepted)
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_test_id("server-delete-kept").click()
    await expect(page.get_by_test_id("server-row-kept")).to_have_count(0, timeout=T_UI)
    assert set(servers_file(ui)) == {"added"}


async def test_sandbox_fields_round_trip_through_the_form(make_ui: Any, tmp_path: Path) -> None:
    """Issue 23: the Servers form had no sandbox fields, only the raw JSON."""
    readable, writable = tmp_path / "inbox", tmp_path / "out"
    readable.mkdir()
    writable.mkdir()
    ui: AdminUI = await make_ui({})
    page = ui.page
    await ui.open_tab("servers")
    entry = stdio_fixture_entry("boxed")
    await page.get_by_test_id("server-add").click()
    await page.get_by_test_id("sf-key").fill("boxed")
    await page.get_by_test_id("sf-command").fill(entry["command"])
    await page.get_by_test_id("sf-args").fill("\n".join(entry["args"]))
    await expect(page.get_by_test_id("sfs-enabled")).to_be_checked()
    await page.get_by_test_id("sfs-network").select_option("off")
    await page.get_by_test_id("sfs-readPaths").fill(f"{readable}\n")
    await page.get_by_test_id("sfs-writePaths").fill(str(writable))
    await page.get_by_test_id("sfs-memoryMb").fill("256")
    await page.get_by_test_id("sfs-pids").fill("64")
    await page.get_by_test_id("sfs-cpus").fill("0.5")
    # a malformed limit is refused in the form, with a sentence, and nothing is written
    await page.get_by_test_id("sfs-memoryMb").fill("lots")
    await expect(page.get_by_test_id("server-form-error")).to_contain_text("memoryMb must be", timeout=T_UI)
    await page.get_by_test_id("sfs-memoryMb").fill("256")
    await ui.shot("servers-sandbox-form")
    await page.get_by_test_id("server-form-save").click()
    await expect(page.get_by_test_id("server-form")).to_be_hidden(timeout=T_UI)
    sandbox = {"network": False, "readPaths": [str(readable)], "writePaths": [str(writable)], "memoryMb": 256,
               "pids": 64, "cpus": 0.5}  # fmt: skip
    assert servers_file(ui)["boxed"]["sandbox"] == sandbox
    await expect(page.get_by_test_id("server-state-boxed")).to_have_text("RUNNING", timeout=T_BACKEND)

    # reopened, the form shows what the file holds; unsandboxing and clearing the lists leaves only what remains
    await page.get_by_test_id("server-edit-boxed").click()
    await expect(page.get_by_test_id("sfs-network")).to_have_value("off")
    await expect(page.get_by_test_id("sfs-readPaths")).to_have_value(str(readable))
    await expect(page.get_by_test_id("sfs-cpus")).to_have_value("0.5")
    await page.get_by_test_id("sfs-enabled").uncheck()
    await page.get_by_test_id("sfs-network").select_option("on")
    await page.get_by_test_id("sfs-readPaths").fill("")
    await page.get_by_test_id("sfs-writePaths").fill("")
    await page.get_by_test_id("server-form-save").click()
    await expect(page.get_by_test_id("server-form")).to_be_hidden(timeout=T_UI)
    assert servers_file(ui)["boxed"]["sandbox"] == {"enabled": False, "memoryMb": 256, "pids": 64, "cpus": 0.5}

    # a network policy object (edited in the JSON) shows as custom, and editing another field keeps it as it is
    await page.get_by_test_id("server-add").click()
    await page.get_by_test_id("sf-advanced").locator("summary").click()
    policy = {"command": "x", "sandbox": {"network": {"hostPorts": [5432]}, "pids": 8}}
    await page.get_by_test_id("sf-json").fill(json.dumps(policy))
    await expect(page.get_by_test_id("sfs-network")).to_have_value("custom")
    await page.get_by_test_id("sfs-pids").fill("16")
    edited = json.loads(await page.get_by_test_id("sf-json").input_value())
    assert edited["sandbox"] == {"network": {"hostPorts": [5432]}, "pids": 16}, edited
    await page.get_by_test_id("server-form-cancel").click()


# ---------------------------------------------------------------------------------------------------- tools


async def exposed_tools(ui: AdminUI) -> set[str]:
    async with mcp_client(ui.sup.url) as client:
        return {tool.name for tool in (await client.list_tools()).tools}


async def test_disabled_tool_vanishes_from_an_mcp_client(make_ui: Any) -> None:
    ui: AdminUI = await make_ui({"echo": stdio_fixture_entry("echo")}, wait={"echo"})
    page = ui.page
    assert "echo--echo" in await exposed_tools(ui)
    await ui.open_tab("tools")
    checkbox = page.get_by_test_id("tool-enabled-echo--echo")
    await expect(checkbox).to_be_checked(timeout=T_UI)
    await expect(page.get_by_test_id("tool-row-echo--add")).to_be_visible()

    await checkbox.uncheck()
    await expect(page.get_by_test_id("tool-enabled-echo--echo")).not_to_be_checked()

    async def hidden() -> bool:
        names = await exposed_tools(ui)
        return "echo--echo" not in names and "echo--add" in names

    await async_wait_until(hidden, 30, interval=0.3, what="echo--echo to leave tools/list")
    await ui.page.get_by_test_id("tools-refresh").click()
    await expect(page.get_by_test_id("tool-enabled-echo--echo")).not_to_be_checked(timeout=T_UI)
    await ui.shot("tools")

    # an exposed name that another tool already has: the backend refuses, the row says why
    await page.get_by_test_id("tool-name-echo--add").fill("echo--whoami")
    await page.get_by_test_id("tool-save-echo--add").click()
    await expect(page.get_by_test_id("tool-error-echo--add")).to_be_visible(timeout=T_UI)
    await expect(page.get_by_test_id("tool-error-echo--add")).not_to_have_text("")
    await ui.shot("tools-error")

    # a valid override, then enabling the tool again
    await page.get_by_test_id("tool-name-echo--add").fill("sum_two")
    await page.get_by_test_id("tool-save-echo--add").click()
    await expect(page.get_by_test_id("tool-exposed-echo--add")).to_have_text("exposed as sum_two", timeout=T_UI)
    await page.get_by_test_id("tool-enabled-echo--echo").check()
    await expect(page.get_by_test_id("tool-enabled-echo--echo")).to_be_checked()

    async def back() -> bool:
        names = await exposed_tools(ui)
        return "echo--echo" in names and "sum_two" in names and "echo--add" not in names

    await async_wait_until(back, 30, interval=0.3, what="echo--echo back and echo--add renamed in tools/list")


# ---------------------------------------------------------------------------------------------------- clients

CI_KEY, OTHER_KEY = "key-of-the-ci-bot", "key-of-someone-else"


async def tool_names(ui: AdminUI, key: str) -> set[str]:
    async with mcp_client(ui.sup.url, {"X-Api-Key": key}) as client:
        return {tool.name for tool in (await client.list_tools()).tools}


async def test_a_profile_edited_in_the_ui_changes_a_clients_tool_list(make_ui: Any) -> None:
    servers = {"one": stdio_fixture_entry("one"), "two": stdio_fixture_entry("two")}
    ui: AdminUI = await make_ui(servers, wait={"one", "two"}, env={"ALLOWED_KEYS": f"{CI_KEY},{OTHER_KEY}"})
    page = ui.page
    clients_path = ui.sup.config_dir / "clients.json"
    every_tool = {f"{key}--{tool}" for key in ("one", "two") for tool in ("echo", "add", "slow", "whoami")}
    seen: list[str] = []
    async with mcp_client(ui.sup.url, {"X-Api-Key": CI_KEY}, seen) as ci_bot:

        async def ci_bot_sees(expected: set[str]) -> None:
            async def listed() -> bool:
                return {tool.name for tool in (await ci_bot.list_tools()).tools} == expected

            await async_wait_until(listed, 30, interval=0.3, what=f"the ci-bot's session to list {sorted(expected)}")

        await ci_bot_sees(every_tool)  # no clients.json: everyone sees everything
        await ui.open_tab("clients")
        await expect(page.get_by_test_id("clients-absent")).to_be_visible(timeout=T_UI)
        await ui.shot("clients-absent")

        # an entry without a match: the supervisor's loader refuses it, the form says why, nothing is written
        await page.get_by_test_id("clients-add").click()
        await expect(page.get_by_test_id("client-form")).to_be_visible()
        await page.get_by_test_id("cf-name").fill("ci-bot")
        await page.get_by_test_id("cf-server-all").uncheck()
        await page.get_by_test_id("cf-server-two").uncheck()
        await page.get_by_test_id("cf-tools-deny").fill("one--add")
        await page.get_by_test_id("client-form-save").click()
        error = page.get_by_test_id("client-form-error")
        await expect(error).to_contain_text('"match" must be an object', timeout=T_UI)
        assert not clients_path.exists()
        await ui.shot("clients-error")

        await page.get_by_test_id("cf-keys").fill(CI_KEY)
        await page.get_by_test_id("cf-advanced").locator("summary").click()
        await expect(page.get_by_test_id("cf-json")).to_have_value(re.compile(CI_KEY))  # the JSON follows the form
        await ui.shot("clients-form")
        await page.get_by_test_id("client-form-save").click()
        await expect(page.get_by_test_id("client-form")).to_be_hidden(timeout=T_UI)
        await expect(page.get_by_test_id("client-row-ci-bot")).to_be_visible(timeout=T_UI)
        await expect(page.get_by_test_id("client-servers-ci-bot")).to_have_text("one")
        await expect(page.get_by_test_id("client-match-ci-bot")).to_have_text("1 key")  # the secret is not shown
        assert json.loads(clients_path.read_text()) == {
            "clients": {
                "ci-bot": {"match": {"keys": [CI_KEY]}, "servers": ["one"], "tools": {"deny": ["one--add"]}},
                "*": {"servers": ["*"]},  # "everyone else keeps seeing everything", checked by default
            }
        }
        await ci_bot_sees({"one--echo", "one--slow", "one--whoami"})
        assert "notifications/tools/list_changed" in seen  # the open session was told, not only new ones

        # edit the profile: one more server, one more denied tool
        await page.get_by_test_id("client-edit-ci-bot").click()
        await expect(page.get_by_test_id("cf-keys")).to_have_value(CI_KEY)
        await expect(page.get_by_test_id("cf-server-one")).to_be_checked()
        await page.get_by_test_id("cf-server-two").check()
        await page.get_by_test_id("cf-tools-deny").fill("one--add\none--slow")
        await page.get_by_test_id("client-form-save").click()
        await expect(page.get_by_test_id("client-form")).to_be_hidden(timeout=T_UI)
        await expect(page.get_by_test_id("client-servers-ci-bot")).to_have_text("one, two", timeout=T_UI)
        await ci_bot_sees(every_tool - {"one--add", "one--slow"})
        await expect(page.get_by_test_id("client-tools-ci-bot")).to_contain_text("two--echo", timeout=T_UI)
        await expect(page.get_by_test_id("client-tools-ci-bot")).not_to_contain_text("one--slow")
        assert await tool_names(ui, OTHER_KEY) == every_tool  # the "*" entry
        await page.get_by_test_id("client-sees-ci-bot").click()
        await ui.shot("clients")

        # delete the entry: its key falls to "*"; then delete the file
        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_test_id("client-delete-ci-bot").click()
        await expect(page.get_by_test_id("client-row-ci-bot")).to_have_count(0, timeout=T_UI)
        await ci_bot_sees(every_tool)
        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_test_id("clients-delete-file").click()
        await expect(page.get_by_test_id("clients-absent")).to_be_visible(timeout=T_UI)
        assert not clients_path.exists()


# ---------------------------------------------------------------------------------------------------- installs

LINES_COMMAND = "sh -c 'for i in 1 2 3; do echo line-$i; sleep 0.3; done'"
RECORD_LINES = """() => {
    window.__lines = [];
    const output = document.querySelector('[data-testid="install-output"]');
    new MutationObserver((mutations) => {
        for (const m of mutations) for (const node of m.addedNodes)
            if (node.nodeType === 1) window.__lines.push({text: node.textContent, kind: node.dataset.kind,
                                                          t: performance.now()});
    }).observe(output, {childList: true});
}"""


async def test_install_output_streams_live_and_cancel_stops_it(make_ui: Any) -> None:
    base = {"type": "stdio", "command": sys.executable, "active": False}
    servers = {
        "lines": {**base, "installCommands": [LINES_COMMAND, "echo to-stderr >&2"]},
        "forever": {**base, "installCommands": ["echo started; exec sleep 300"]},
    }
    ui: AdminUI = await make_ui(servers)
    page = ui.page
    await ui.open_tab("installs")
    await page.get_by_test_id("install-select").select_option("lines")
    await page.evaluate(RECORD_LINES)
    await page.get_by_test_id("install-run").click()

    status = page.get_by_test_id("install-status")
    await expect(status).to_have_attribute("data-state", "succeeded", timeout=T_BACKEND)
    await expect(status).to_have_attribute("data-exit-code", "0")
    await expect(status).to_contain_text("exit code 0")
    output = page.get_by_test_id("install-output")
    await expect(output.locator('[data-kind="stderr"]')).to_have_text("to-stderr")
    await expect(output.locator('[data-kind="complete"]')).to_contain_text("exit code 0")
    await ui.shot("installs")

    seen: list[dict[str, Any]] = await page.evaluate("window.__lines")
    stdout = [line for line in seen if line["kind"] == "stdout"]
    assert [line["text"] for line in stdout] == ["line-1", "line-2", "line-3"], seen
    complete = next(line for line in seen if line["kind"] == "complete")
    # live: the lines arrived one by one as the command printed them (0.3 s apart), not at the end in one batch
    assert stdout[2]["t"] - stdout[0]["t"] >= 300, seen
    assert stdout[0]["t"] < stdout[1]["t"] < stdout[2]["t"] <= complete["t"], seen
    assert not (ui.tools_folder / "lines").exists()  # the commands ran in its parent, which they left alone

    # a long install, cancelled: its process group is killed and the page says so
    await page.get_by_test_id("install-select").select_option("forever")
    await page.get_by_test_id("install-run").click()
    await expect(output.locator('[data-kind="stdout"]')).to_have_text("started", timeout=T_BACKEND)
    await expect(status).to_have_attribute("data-state", "running")

    def sleepers() -> list[psutil.Process]:
        return running(ui.sup, ["sleep", "300"])

    await async_wait_until(sleepers, 30, what="the install's `sleep 300`")
    await page.get_by_test_id("install-cancel").click()
    await expect(status).to_have_attribute("data-state", "cancelled", timeout=T_BACKEND)
    await expect(output.locator('[data-kind="error"]')).to_contain_text("cancelled")
    await expect(page.get_by_test_id("install-run")).to_be_enabled()
    await expect(page.get_by_test_id("install-cancel")).to_be_disabled()
    await async_wait_until(lambda: not sleepers(), 30, what="the cancelled install's processes to be gone")
    await ui.shot("installs-cancelled")


# ---------------------------------------------------------------------------------------------------- terminal


async def test_terminal_runs_a_command(make_ui: Any, tmp_path: Path) -> None:
    # The terminal runs `$SHELL -i`, which reads ~/.bashrc: an empty HOME keeps this machine's shell start-up
    # (pyenv, prompts, banners) out of the test.
    home = tmp_path / "home"
    home.mkdir()
    ui: AdminUI = await make_ui({}, env={"HOME": str(home)})
    page = ui.page
    await ui.open_tab("terminal")
    await expect(page.get_by_test_id("terminal-warning")).to_contain_text("gateway's privileges")
    await page.get_by_test_id("terminal-start").click()
    await expect(page.locator("body")).to_have_attribute("data-terminal", "open", timeout=T_BACKEND)
    screen = page.get_by_test_id("terminal-output")
    await expect(screen).to_be_focused()
    await expect(screen).not_to_have_text(re.compile(r"^\s*$"), timeout=T_BACKEND)  # the shell's prompt

    # Ctrl-C interrupts a foreground command
    await page.keyboard.type("sleep 300")
    await page.keyboard.press("Enter")
    await async_wait_until(lambda: running(ui.sup, ["sleep", "300"]), 30, what="the terminal's sleep")
    await page.keyboard.press("Control+c")
    await async_wait_until(lambda: not running(ui.sup, ["sleep", "300"]), 30, what="Ctrl-C to stop the sleep")

    # a typo fixed with Backspace; the shell computes the number, so the page can only show it if it ran
    await page.keyboard.type("echo hellx")
    await page.keyboard.press("Backspace")
    await page.keyboard.type("o-$((6*7))")
    await page.keyboard.press("Enter")
    await expect(screen).to_contain_text("hello-42", timeout=T_BACKEND)
    text = await screen.text_content() or ""
    assert "\x1b" not in text  # escape sequences are not shown raw
    assert "echo hello-$((6*7))" in text  # the line as edited, echoed by the shell
    await ui.shot("terminal")

    await page.get_by_test_id("terminal-close").click()
    await expect(page.locator("body")).to_have_attribute("data-terminal", "closed", timeout=T_UI)
    await expect(page.get_by_test_id("terminal-start")).to_be_enabled()


# ---------------------------------------------------------------------------------------------------- health


async def test_health_page_is_live(make_ui: Any) -> None:
    ui: AdminUI = await make_ui({"echo": stdio_fixture_entry("echo")}, wait={"echo"})
    page = ui.page
    await ui.open_tab("health")
    state = page.get_by_test_id("health-state-echo")
    pid_cell = page.get_by_test_id("health-pid-echo")
    await expect(state).to_have_text("RUNNING", timeout=T_BACKEND)
    await expect(pid_cell).to_have_text(re.compile(r"^\d+$"))
    await expect(page.get_by_test_id("health-rss-echo")).to_have_text(re.compile(r"^\d+\.\d$"))
    await expect(page.get_by_test_id("health-cpu-echo")).to_have_text(re.compile(r"^\d+\.\d$"))
    await expect(page.get_by_test_id("health-uptime-echo")).to_have_text(re.compile(r"\d+s$"))
    await expect(page.get_by_test_id("health-tools-echo")).to_have_text("4")
    await expect(page.get_by_test_id("health-gateway")).to_be_visible()
    await expect(page.get_by_test_id("gateway-pid-row")).to_have_text(re.compile(r"^\d+$"))
    # The sandbox in one line (method, exposure score); the account behind a toggle, which a refresh keeps open.
    sandbox = page.get_by_test_id("health-sandbox-echo")
    await expect(sandbox.locator("summary")).to_have_text(re.compile(r"^(bwrap|landlock|limits-only) \d+\.\d$"))
    await expect(page.get_by_test_id("health-sandbox-echo-score")).to_have_text(re.compile(r"^\d+\.\d$"))
    await sandbox.locator("summary").click()
    await expect(sandbox.locator("li").first).to_be_visible()
    await expect(sandbox).to_contain_text("filesystem")
    await expect(sandbox).not_to_contain_text("not enforced")  # no longer five repeated lines per row
    old_pid = (await pid_cell.text_content() or "").strip()
    assert int(old_pid) == ui.sup.backends()["echo"]["pid"]
    await ui.shot("health")

    # restart: the event stream brings the new pid without a reload of the page
    await page.get_by_test_id("health-restart-echo").click()
    await expect(pid_cell).not_to_have_text(old_pid, timeout=T_BACKEND)
    await expect(pid_cell).to_have_text(re.compile(r"^\d+$"), timeout=T_BACKEND)
    await expect(state).to_have_text("RUNNING", timeout=T_BACKEND)
    await expect(page.get_by_test_id("health-restarts-echo")).to_have_text(re.compile(r"^\d+$"))

    # stop, then start again
    toggle = page.get_by_test_id("health-toggle-echo")
    await expect(toggle).to_have_text("Stop")
    await toggle.click()
    await expect(state).to_have_text("STOPPED", timeout=T_BACKEND)
    await expect(toggle).to_have_text("Start", timeout=T_UI)
    await ui.shot("health-stopped")
    await toggle.click()
    await expect(state).to_have_text("RUNNING", timeout=T_BACKEND)

    # the backend's recent stderr
    await page.get_by_test_id("health-logs-echo").click()
    await expect(page.get_by_test_id("logs-panel")).to_be_visible()
    await expect(page.get_by_test_id("logs-pane")).not_to_have_text("Loading…", timeout=T_UI)


async def test_config_error_is_shown_loudly(make_ui: Any) -> None:
    ui: AdminUI = await make_ui({"echo": stdio_fixture_entry("echo")}, wait={"echo"})
    page = ui.page
    await ui.open_tab("health")
    await expect(page.get_by_test_id("health-state-echo")).to_have_text("RUNNING", timeout=T_BACKEND)
    await expect(page.get_by_test_id("config-error-banner")).to_be_hidden()

    # a broken mcp_server.json: the reload is refused, the page says why, and the running backend stays
    servers_path = ui.sup.config_dir / "mcp_server.json"
    good = servers_path.read_text()
    servers_path.write_text('{"mcpServers": {"echo": {"type": "stdio"}}}')
    await page.get_by_test_id("reload-config").click()
    message = page.get_by_test_id("reload-message")
    await expect(message).to_contain_text('"command" is required', timeout=T_BACKEND)
    await expect(message).to_have_class(re.compile(r"\bdanger\b"))
    await expect(page.get_by_test_id("config-error-banner")).to_contain_text('"command" is required', timeout=T_BACKEND)
    await expect(page.get_by_test_id("health-config-error")).to_contain_text('"command" is required')
    await expect(page.get_by_test_id("health-state-echo")).to_have_text("RUNNING")
    await ui.shot("health-config-error")

    servers_path.write_text(good)
    await page.get_by_test_id("reload-config").click()
    await expect(message).not_to_have_class(re.compile(r"\bdanger\b"), timeout=T_BACKEND)
    await expect(page.get_by_test_id("config-error-banner")).to_be_hidden(timeout=T_BACKEND)


def test_install_script_is_idempotent_here() -> None:
    """scripts/install-debian-package.sh does nothing (and needs no root) when the browser is already installed."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-debian-package.sh"), "chromium", CHROMIUM],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "already installed" in result.stdout
