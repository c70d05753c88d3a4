"""The admin's tool pinning page in a real browser: a held rug pull with its diff, approve and reject."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e.test_admin_browser import T_NAV, T_UI, AdminUI, make_ui, require_chromium
from tests.e2e.test_tool_pinning import BENIGN, descriptions, rug_entry, turn_and_wait
from tests.helpers import async_wait_until, mcp_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

__all__ = ["make_ui", "require_chromium"]  # the browser fixtures, shared with the admin's own tests


async def test_the_pinning_page_shows_the_diff_and_approves(make_ui: Any) -> None:
    ui: AdminUI = await make_ui({"rug": rug_entry()}, wait={"rug"})
    page = ui.page
    async with mcp_client(ui.sup.url) as client:
        assert (await descriptions(client))["rug--add"] == BENIGN
        await turn_and_wait(client, "rug--add")
        assert "rug--add" not in await descriptions(client)

        async def prompt_held() -> bool:
            return "rug--summary" not in {p.name for p in (await client.list_prompts()).prompts}

        await async_wait_until(prompt_held, 15, what="the changed prompt to be held")

        await page.get_by_test_id("tab-pins").click()
        await page.wait_for_url(f"{ui.admin}/pins", timeout=T_NAV)
        await expect(page.get_by_test_id("pin-mode")).to_have_text("enforce", timeout=T_UI)
        held = page.get_by_test_id("held-rug--add")
        await expect(held).to_contain_text("its definition changed since it was pinned")
        diff = held.get_by_test_id("pin-diff")
        await expect(diff.locator(".diff-removed", has_text=f'"description": "{BENIGN}"')).to_have_count(1)
        await expect(diff.locator(".diff-added", has_text="id_rsa")).to_have_count(1)
        await expect(page.get_by_test_id("held-rug--summary")).to_be_visible()
        await ui.shot("pins-held")

        await held.get_by_test_id("approve-rug--add").click()
        await expect(page.get_by_test_id("pin-message")).to_have_text("Approved: tool rug--add.", timeout=T_UI)
        await expect(page.get_by_test_id("held-rug--add")).to_have_count(0)

        async def served() -> bool:
            return "id_rsa" in (await descriptions(client)).get("rug--add", "")

        await async_wait_until(served, 15, what="the approved tool in tools/list")

        await page.get_by_test_id("reject-rug--summary").click()
        await expect(page.get_by_test_id("pin-message")).to_have_text("Rejected: prompt rug--summary.", timeout=T_UI)
        await expect(page.get_by_test_id("pin-row-rug--summary")).to_contain_text("rejected")
        await ui.shot("pins-decided")
        assert "rug--summary" not in {p.name for p in (await client.list_prompts()).prompts}
