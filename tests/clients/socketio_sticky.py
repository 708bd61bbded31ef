"""Socket.IO over HTTP long-polling only, the transport that needs every
request of a client to reach the same backend (socket.io #5018, "Session
ID unknown"). Run through tests/clients/python.

  socketio_sticky.py serve NAME   a python-socketio server on 127.0.0.1:0;
                                  prints its port, then serves until killed
  socketio_sticky.py client URL   connects with polling only, makes ten
                                  calls; prints "ok BACKEND" and exits 0 when
                                  all ten reached one backend, else prints
                                  "failed: ..." and exits 1; either way
                                  followed by "; refused: ..." with every
                                  answer over 399 (status and body) before
                                  the client's own disconnect
"""

import asyncio
import sys

import aiohttp
import socketio
from aiohttp import web

CALLS = 10


async def serve(name):
    sio = socketio.AsyncServer(async_mode="aiohttp", transports=["polling"])
    app = web.Application()
    sio.attach(app)

    @sio.event
    async def echo(sid, data):
        return {"backend": name, "data": data}

    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(port, flush=True)
    await asyncio.Event().wait()


async def client(url):
    # aiohttp's default jar ignores cookies from IP addresses; the gateway
    # listens on 127.0.0.1.
    jar = aiohttp.CookieJar(unsafe=True)
    # Every refusal, to tell why a run failed; the body read here is kept
    # by aiohttp for Engine.IO's own read.
    refused = []

    async def on_request_end(session, context, params):
        if params.response.status >= 400:
            body = (await params.response.text()).strip()
            refused.append(f"{params.method} {params.response.status} {body}")

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    async with aiohttp.ClientSession(cookie_jar=jar, trace_configs=[trace]) as http:
        sio = socketio.AsyncClient(http_session=http, reconnection=False)
        backends = set()
        try:
            await sio.connect(url, transports=["polling"], wait_timeout=5)
            for i in range(CALLS):
                reply = await sio.call("echo", i, timeout=5)
                if reply["data"] != i:
                    raise ValueError(f"call {i} answered {reply}")
                backends.add(reply["backend"])
        except Exception as e:  # any failure is the verdict
            print(f"failed: {type(e).__name__}: {e}; refused: {refused}", flush=True)
            return 1
        finally:
            # What was refused before the disconnect, whose own refusal
            # of the held poll ("Session is disconnected") is no failure.
            before_disconnect = list(refused)
            # disconnect() waits for the held long-poll; the session's
            # close (leaving the `async with`) ends it anyway.
            try:
                await asyncio.wait_for(sio.disconnect(), 1)
            except asyncio.TimeoutError:
                pass
        if len(backends) != 1:
            print(f"failed: calls reached {sorted(backends)}; refused: {before_disconnect}", flush=True)
            return 1
        print(f"ok {backends.pop()}; refused: {before_disconnect}", flush=True)
        return 0


def main():
    mode, arg = sys.argv[1], sys.argv[2]
    if mode == "serve":
        asyncio.run(serve(arg))
    else:
        sys.exit(asyncio.run(client(arg)))


if __name__ == "__main__":
    main()
