#!/usr/bin/env python3
"""wss:// echo round trip through the gateway with an independent client:
Python `websockets` over the standard library's ssl (OpenSSL), verifying the
gateway's certificate against a CA file.

Usage: wss_echo.py wss://localhost:PORT/echo CA_FILE
Exits 0 when every check passed, 1 with the failing check on stderr.
"""
import asyncio
import os
import ssl
import sys

import websockets


async def main(url, cafile):
    context = ssl.create_default_context(cafile=cafile)
    # Verification stays on: hostname and chain are checked against CA_FILE.
    async with websockets.connect(url, ssl=context, compression=None) as ws:
        version = ws.transport.get_extra_info("ssl_object").version()
        assert version in ("TLSv1.2", "TLSv1.3"), f"TLS version {version}"
        for payload in ("hello over tls", "é" * 1000, os.urandom(70000)):
            await ws.send(payload)
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got == payload, f"echo mismatch ({len(payload)} bytes)"
        await ws.close(1000, "bye")
    # A context that does not trust the CA must be refused.
    try:
        async with websockets.connect(url, ssl=ssl.create_default_context()):
            raise AssertionError("connected without trusting the CA")
    except ssl.SSLCertVerificationError:
        pass
    print(f"python websockets wss: all checks passed ({version})")


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), 60))
    except Exception as e:  # report any failure as a failed check
        print(f"python websockets wss: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
