"""Autobahn fuzzingserver client on Python `websockets` (asyncio API):
runs every case the server offers, echoing each message, then asks the
server to write its report. Usage: python3 client.py BASE_URL AGENT
(BASE_URL like ws://127.0.0.1:9001, either the fuzzingserver or wsgate).
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

# Cases 9.* send up to 16 MiB; a case that hangs is cut (the server marks it).
MAX_SIZE = 64 * 2**20
CASE_TIMEOUT = 60


async def case_count(base):
    async with connect(base + "/getCaseCount") as ws:
        return json.loads(await ws.recv())


async def run_case(base, case, agent):
    url = "%s/runCase?case=%d&agent=%s" % (base, case, agent)
    try:
        async with connect(url, max_size=MAX_SIZE, ping_interval=None,
                           compression="deflate") as ws:
            async for message in ws:
                await ws.send(message)
    except (WebSocketException, OSError, UnicodeDecodeError):
        pass


async def main(base, agent):
    count = await case_count(base)
    for case in range(1, count + 1):
        try:
            await asyncio.wait_for(run_case(base, case, agent), CASE_TIMEOUT)
        except asyncio.TimeoutError:
            print("case %d timed out" % case, file=sys.stderr)
    async with connect("%s/updateReports?agent=%s" % (base, agent)) as ws:
        await ws.close()
    print("%s: %d cases run" % (agent, count))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
