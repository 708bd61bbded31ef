"""Shows a behaviour of the Python `websockets` echo backend (echo.py), not
of wsgate: given a text message and a close frame in one TCP segment, it
answers the close and never echoes the message.

Usage: python3 close_race.py PORT   (echo.py listening on 127.0.0.1:PORT)

This is what happens in Autobahn cases 3.4, 4.1.5 and 4.2.5 through wsgate:
the client sends a message and a broken frame; the gateway forwards the
message and, in place of the broken frame, its close 1002 - right behind it,
as the broken frame was. Direct, websockets echoes before failing on the
broken frame; given a close instead, it does not (20 of 20 trials here), so
the verdict is NON-STRICT. compare.py lists these as "backend-close-race".
"""

import base64
import os
import socket
import struct
import sys

port = int(sys.argv[1])
def frame(op, payload, mask=b"\x01\x02\x03\x04"):
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | op, 0x80 | len(payload)]) + mask + masked
results = {}
for trial in range(20):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (port, key)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf: buf += s.recv(4096)
    rest = buf.split(b"\r\n\r\n", 1)[1]
    # message then a close, in one chop: what the gateway sends after a client's violation
    s.sendall(frame(1, b"hello") + frame(8, struct.pack("!H", 1002)))
    data = rest
    s.settimeout(2)
    try:
        while True:
            d = s.recv(4096)
            if not d: break
            data += d
    except socket.timeout: pass
    first = data[0] & 0x0f if data else None
    results[first] = results.get(first, 0) + 1
    s.close()
print("first frame opcode from backend after text+close (1=echo, 8=close):", results)
