"""WebSocket echo server on Python `websockets` (permessage-deflate on by
default), the second independent backend of scripts/autobahn.sh.

Usage: python3 echo.py HOST PORT; prints "listening on HOST:PORT" once bound.
"""

import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except Exception:
        pass


async def main(host, port):
    # Autobahn's 9.* cases send up to 16 MiB messages.
    async with serve(echo, host, port, max_size=64 * 2**20,
                     ping_interval=None, compression="deflate") as server:
        bound = server.sockets[0].getsockname()
        print("listening on %s:%d" % (bound[0], bound[1]), flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
