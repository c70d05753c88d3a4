"""Capture the real tools/list of the published servers the test suite runs, into bench/tool_search_catalogs.json
(the fixture bench/tool_search.py ranks over). Run again after `make lock` moves their versions:

    NPM_TOOLS_DIR=/path/to/.tools/npm .venv/bin/python bench/tool_search_catalogs.py

Each server is started over stdio with the official SDK client (server-everything, server-filesystem and
server-memory from the npm tools, mcp-server-time from the venv), listed, and stopped.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.npm_tools import NODE, NODE_MODULES, installed_version  # noqa: E402

FIXTURE = ROOT / "bench" / "tool_search_catalogs.json"


def servers(scratch: Path) -> dict[str, tuple[StdioServerParameters, str]]:
    def npm(name: str, *args: str, env: dict[str, str] | None = None) -> tuple[StdioServerParameters, str]:
        package = f"@modelcontextprotocol/server-{name}"
        entry = NODE_MODULES / package / "dist" / "index.js"
        params = StdioServerParameters(command=str(NODE), args=[str(entry), *args], env=env)
        return params, f"{package}@{installed_version(package)}"

    time_bin = Path(sys.executable).parent / "mcp-server-time"
    return {
        "everything": npm("everything", "stdio"),
        "filesystem": npm("filesystem", str(scratch)),
        "memory": npm("memory", env={"MEMORY_FILE_PATH": str(scratch / "memory.jsonl")}),
        "time": (StdioServerParameters(command=str(time_bin), args=["--local-timezone", "UTC"]), "mcp-server-time"),
    }


async def listed(params: StdioServerParameters) -> list[dict[str, Any]]:
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.list_tools()
        return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in result.tools]


async def main() -> None:
    catalogs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for key, (params, source) in servers(Path(scratch)).items():
            tools = await asyncio.wait_for(listed(params), 60)
            catalogs[key] = {"source": source, "tools": tools}
            print(f"{key}: {len(tools)} tools ({source})")
    FIXTURE.write_text(json.dumps(catalogs, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
