"""A tiny WebSocket echo app for the compose example.

Every reply is prefixed with the replica's name (REPLICA), so a client can
see wsgate's round-robin across replicas.
"""

import asyncio
import os

from websockets.asyncio.server import serve

REPLICA = os.environ.get("REPLICA", "echo")
PORT = int(os.environ.get("PORT", "9000"))


async def echo(websocket):
    async for message in websocket:
        if isinstance(message, bytes):
            await websocket.send(message)
        else:
            await websocket.send(f"{REPLICA}: {message}")


async def main():
    async with serve(echo, "0.0.0.0", PORT) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
