"""Malformed extended CONNECTs (RFC 8441) sent with Python's `h2`.

Usage: python h2_bad_input.py HOST PORT

Each case runs on its own HTTP/2 connection and prints one JSON line: the
status the client got, whether the stream ended, the RST_STREAM or GOAWAY
error code that came with or instead of it, and whether the connection
closed. The Rust test decides what each must be.
"""

import json
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings

WS = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https")]


def tls(host, port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    return ctx.wrap_socket(socket.create_connection((host, port), timeout=10),
                           server_hostname="localhost")


def run(host, port, headers, *, wait_settings=True, data=None, normalize=True, end_stream=False):
    """Sends one request; returns what came back for it. `normalize=False`
    sends the headers exactly as given (h2 would drop connection-specific
    ones such as transfer-encoding)."""
    sock = tls(host, port)
    config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                       validate_outbound_headers=False,
                                       normalize_outbound_headers=normalize)
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    if wait_settings:
        got = False
        while not got:
            for ev in conn.receive_data(sock.recv(65536)):
                got = got or isinstance(ev, h2.events.RemoteSettingsChanged)
            sock.sendall(conn.data_to_send())
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, headers, end_stream=end_stream)
    if data is not None:
        conn.send_data(sid, data)
    sock.sendall(conn.data_to_send())
    result = {"status": None, "reset": None, "goaway": None, "closed": False, "body": "",
              "ended": False}
    # Until the stream is reset, or it ended and a PING sent then came back
    # (the gateway writes in order, so a reset behind the end is in by then).
    pinged = acked = False
    while not acked and result["reset"] is None and result["goaway"] is None:
        try:
            chunk = sock.recv(65536)
        except (ConnectionError, ssl.SSLError, socket.timeout):
            chunk = b""
        if not chunk:
            result["closed"] = True
            break
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                result["status"] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                result["ended"] = True
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                result["reset"] = int(ev.error_code)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                result["goaway"] = int(ev.error_code)
            elif isinstance(ev, h2.events.DataReceived):
                result["body"] += ev.data.decode("utf-8", "replace")
            elif isinstance(ev, h2.events.PingAckReceived):
                acked = True
        if result["ended"] and not pinged:
            conn.ping(b"drained!")
            pinged = True
        try:
            sock.sendall(conn.data_to_send())
        except OSError:
            pass
    sock.close()
    return result


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    authority = (":authority", f"localhost:{port}")
    version = ("sec-websocket-version", "13")
    cases = {
        "no_path": WS + [authority, version],
        "no_scheme": [WS[0], WS[1], (":path", "/echo"), authority, version],
        "unknown_protocol": [WS[0], (":protocol", "chat"), WS[2], (":path", "/echo"), authority, version],
        "malformed_version": WS + [(":path", "/echo"), authority, ("sec-websocket-version", "1e3")],
        "declared_body": WS + [(":path", "/echo"), authority, version, ("content-length", "5")],
        "zero_length_00": WS + [(":path", "/echo"), authority, version, ("content-length", "00")],
    }
    for name, headers in cases.items():
        print(json.dumps({"case": name, **run(host, port, headers)}), flush=True)
    chunked = WS + [(":path", "/echo"), authority, version, ("transfer-encoding", "chunked")]
    print(json.dumps({"case": "transfer_encoding", **run(host, port, chunked, normalize=False)}),
          flush=True)
    # A GET that ends its side with its head: the 400 ends the stream, and
    # no reset follows it.
    get = [(":method", "GET"), (":scheme", "https"), (":path", "/"), authority,
           ("transfer-encoding", "chunked")]
    print(json.dumps({"case": "get_transfer_encoding",
                      **run(host, port, get, normalize=False, end_stream=True)}), flush=True)
    early = WS + [(":path", "/echo"), authority, version]
    print(json.dumps({"case": "before_settings", **run(host, port, early, wait_settings=False)}), flush=True)
    print("all cases ran")


if __name__ == "__main__":
    main()
