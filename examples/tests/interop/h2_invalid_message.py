"""Sends, on one cleartext (prior-knowledge) HTTP/2 connection to 127.0.0.1:PORT with Host
HOST, a malformed request (a connection-specific header, RFC 9113 section 8.2.2) and then a
valid GET, and prints as JSON what became of each: the status, "reset" (RST_STREAM) or
"closed" (the connection ended, with or without GOAWAY), and the GOAWAY's error code if one came
(false if none). Uses the independent python `h2`
implementation, its own header validation turned off so that it can send the bad one."""
import json
import socket
import sys

import h2.config
import h2.connection
import h2.events
import h2.exceptions

port, host = int(sys.argv[1]), sys.argv[2]
sock = socket.create_connection(("127.0.0.1", port), timeout=5)
config = h2.config.H2Configuration(
    client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False
)
conn = h2.connection.H2Connection(config=config)
conn.initiate_connection()
base = [(":method", "GET"), (":scheme", "http"), (":authority", host), (":path", "/")]
conn.send_headers(1, base + [("connection", "keep-alive")], end_stream=True)
sock.sendall(conn.data_to_send())
outcome = {}


def read_until(done):
    while not done():
        try:
            data = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            data = b""
        if not data:
            for stream in (1, 3):
                outcome.setdefault(stream, "closed")
            return
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            events = []
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers).get(b":status", b"").decode()
                outcome[event.stream_id] = int(status)
            elif isinstance(event, h2.events.StreamReset):
                outcome[event.stream_id] = "reset"
            elif isinstance(event, h2.events.ConnectionTerminated):
                outcome["goaway"] = event.error_code.name
        try:
            sock.sendall(conn.data_to_send())
        except OSError:
            pass


read_until(lambda: 1 in outcome)
if outcome.get(1) != "closed":
    try:
        conn.send_headers(3, base, end_stream=True)
        sock.sendall(conn.data_to_send())
        read_until(lambda: 3 in outcome)
    except h2.exceptions.ProtocolError:
        pass  # python h2 opens no stream after a GOAWAY
    except OSError:
        outcome[3] = "closed"
if "goaway" in outcome and outcome.get(3) != "closed":
    # After a GOAWAY the client opens no stream; the server must still close the connection.
    try:
        sock.settimeout(5)
        while sock.recv(65536):
            pass
        outcome[3] = "closed"
    except socket.timeout:
        outcome[3] = "left open"
    except OSError:
        outcome[3] = "closed"
print(json.dumps({"malformed": outcome.get(1), "next": outcome.get(3), "goaway": outcome.get("goaway", False)}))
