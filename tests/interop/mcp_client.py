"""An MCP client for tests/api/interop.rs made of PyPI's `mcp` 2.x, the
Python SDK that speaks the stateless protocol version 2026-07-28: its
Client, left to negotiate (`mode="auto"`: `server/discover`, then the
newest version both speak), drives the gateway's /mcp as an agent would:
list the tools, start a verification, read it, meet a tool error for
arguments that break a schema and a JSON-RPC error for an unknown tool.

    python mcp_client.py --url <gateway>/mcp --key <bot key> --channel <name>

Prints one JSON line of what it saw; exits non-zero on any failure.
Prints no key.
"""
import argparse
import asyncio
import json
import sys
import time

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


async def run(url: str, key: str, channel: str, seen: dict) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport) as client:
            seen["version"] = client.protocol_version
            seen["server"] = client.server_info.name if client.server_info else None
            listed = await client.list_tools()
            seen["tools"] = [t.name for t in listed.tools]
            # call_tool checks structured content against each tool's outputSchema.
            conversation = {"channel": channel, "conversation_id": f"interop-py-{time.time_ns()}"}
            started = await client.call_tool(
                "start_verification", {"conversation": conversation, "proof": "link"}
            )
            seen["started"] = started.structured_content
            interaction = started.structured_content["interaction_id"]
            read = await client.call_tool(
                "get_verification", {"interaction_id": interaction, "wait_seconds": 25}
            )
            seen["read"] = read.structured_content
            broken = await client.call_tool(
                "get_verification", {"interaction_id": interaction, "wait_seconds": 99}
            )
            seen["broken"] = {"isError": broken.is_error, "problem": json.loads(broken.content[0].text)}
            try:
                await client.call_tool("verify_code", {})
                seen["unknown"] = "answered"
            except MCPError as e:
                seen["unknown"] = e.code


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--channel", required=True)
    args = ap.parse_args()
    seen: dict = {}
    began = time.monotonic()
    try:
        asyncio.run(run(args.url, args.key, args.channel, seen))
    except Exception as e:  # noqa: BLE001 -- any failure is reported as one line
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}", **seen}))
        return 1
    seen["seconds"] = round(time.monotonic() - began, 1)
    print(json.dumps({"ok": True, **seen}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
