"""WebSockets over HTTP/2 (RFC 8441) with Python's `h2`, against wsgate.

Usage: python h2_websockets.py HOST PORT

Two WebSockets share one HTTP/2 connection. Stream A opens on /firehose,
whose backend sends as fast as it can; after reading a little of it, this
client stops acknowledging A's data (no WINDOW_UPDATE for A: A's reader
stalls). Stream B opens on /echo and must keep echoing while A is stalled.
Prints one JSON line of findings, then "all checks passed" or exits 1.
"""

import json
import os
import socket
import ssl
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

ECHOES = 300
MIN_STALL = 1.5  # seconds B keeps echoing while A is stalled
STALL_AFTER = 64 * 1024  # bytes of A read (and acknowledged) before the stall
CONN_WINDOW = 1 << 30  # the client's connection window: never the limit


def connect(host, port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=10),
                           server_hostname="localhost")
    assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
    return sock


def ws_frame(payload, opcode=0x2):
    """One masked client frame (RFC 6455 §5.2)."""
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def parse_frames(buf):
    """Complete server frames in buf: [(opcode, payload)], rest."""
    out = []
    while len(buf) >= 2:
        n = buf[1] & 0x7F
        at = 2
        if n == 126:
            if len(buf) < 4:
                break
            n, at = struct.unpack(">H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, at = struct.unpack(">Q", buf[2:10])[0], 10
        if len(buf) < at + n:
            break
        out.append((buf[0] & 0x0F, buf[at:at + n]))
        buf = buf[at + n:]
    return out, buf


class Client:
    def __init__(self, host, port):
        self.sock = connect(host, port)
        self.authority = f"localhost:{port}"
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(CONN_WINDOW - 65535)
        self.flush()
        self.settings = {}
        self.responses = {}
        self.data = {}
        self.unacked = {}
        self.stalled = set()
        self.resets = {}
        while h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL not in self.settings:
            self.pump()

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        for ev in self.conn.receive_data(chunk):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                for code, setting in ev.changed_settings.items():
                    self.settings[code] = setting.new_value
            elif isinstance(ev, h2.events.ResponseReceived):
                self.responses[ev.stream_id] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                sid = ev.stream_id
                self.data[sid] = self.data.get(sid, b"") + ev.data
                if sid in self.stalled:
                    self.unacked[sid] = self.unacked.get(sid, 0) + ev.flow_controlled_length
                else:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.StreamReset):
                self.resets[ev.stream_id] = ev.error_code
        self.flush()

    def open(self, path):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
            (":path", path), (":authority", self.authority), ("sec-websocket-version", "13"),
        ])
        self.flush()
        while sid not in self.responses and sid not in self.resets:
            self.pump()
        return sid

    def send(self, sid, payload):
        self.conn.send_data(sid, ws_frame(payload))
        self.flush()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    c = Client(host, port)
    findings = {"enable_connect_protocol": c.settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL]}
    a = c.open("/firehose")
    b = c.open("/echo")
    findings["a_status"] = c.responses[a].get(":status")
    findings["b_status"] = c.responses[b].get(":status")
    findings["accept_header"] = "sec-websocket-accept" in c.responses[a]
    while len(c.data.get(a, b"")) < STALL_AFTER:
        c.pump()
    c.stalled.add(a)
    a_before = len(c.data.get(a, b""))
    started = time.monotonic()
    echoed, buf, i = 0, b"", 0
    while echoed < ECHOES or time.monotonic() - started < MIN_STALL:
        i += 1
        message = f"message {i} ".encode() * 20
        c.send(b, message)
        while True:
            frames, buf = parse_frames(c.data.get(b, b""))
            if frames:
                c.data[b] = buf
                opcode, payload = frames[0]
                assert (opcode, payload) == (0x2, message), (i, opcode, payload[:40])
                echoed += 1
                break
            c.pump()
    findings["echoes_while_a_stalled"] = echoed
    findings["stall_seconds"] = round(time.monotonic() - started, 3)
    findings["a_bytes_after_stall"] = len(c.data.get(a, b"")) - a_before
    findings["a_received_total"] = len(c.data.get(a, b""))
    findings["a_window"] = 65535
    print(json.dumps(findings))
    ok = (findings["enable_connect_protocol"] == 1 and findings["a_status"] == "200"
          and findings["b_status"] == "200" and not findings["accept_header"]
          and echoed >= ECHOES and findings["a_bytes_after_stall"] <= 65535)
    print("all checks passed" if ok else "some checks failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
