#!/usr/bin/env python3
"""Relay checks with an independent client: Python `websockets`.

Usage: ws_client.py ws://host:port/path
Exits 0 when every check passed, 1 with the failing check on stderr.
"""
import asyncio
import os
import sys

import websockets
from websockets.exceptions import ConnectionClosed


async def echo_round_trips(url):
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        for size in (0, 1, 125, 126, 65535, 65536, 1 << 20):
            payload = os.urandom(size)
            await ws.send(payload)
            got = await ws.recv()
            assert got == payload, f"binary {size}: got {len(got)} bytes"
            text = "é" * (size // 2)
            await ws.send(text)
            assert await ws.recv() == text, f"text {size}"
        # Fragmented message: the relay must forward continuation frames.
        await ws.send(iter(["frag-", "mented-", "text"]))
        assert await ws.recv() == "frag-mented-text", "fragmented"
        # Many messages in flight, order kept.
        for i in range(500):
            await ws.send(str(i))
        for i in range(500):
            assert await ws.recv() == str(i), f"order at {i}"
        await ws.close(4000, "python bye")
        assert ws.close_code == 4000, f"close code {ws.close_code}"
        assert ws.close_reason == "python bye", f"close reason {ws.close_reason!r}"


async def oversized_message_gets_1009(url):
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        await ws.send(b"x" * (64 * 1024 + 1))
        try:
            await asyncio.wait_for(ws.recv(), 10)
            raise AssertionError("oversized message was echoed")
        except ConnectionClosed:
            pass
        assert ws.close_code == 1009, f"close code {ws.close_code}"


async def main():
    url = sys.argv[1]
    await echo_round_trips(url)
    if len(sys.argv) > 2:
        await oversized_message_gets_1009(sys.argv[2])
    print("python websockets: all checks passed")


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    except Exception as e:  # report any failure as a failed check
        print(f"python websockets: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
