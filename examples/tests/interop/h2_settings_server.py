"""An h2c (prior-knowledge) server on 127.0.0.1 that answers every request with, as JSON, the
HTTP/2 settings its client announced on that connection: the SETTINGS_INITIAL_WINDOW_SIZE and
the connection window opened by WINDOW_UPDATEs on stream 0, and the request's :authority and
:scheme.
A request for /malformed is answered with a connection-specific header (RFC 9113 section
8.2.2), which a client must treat as malformed; /connections answers, as JSON, what each earlier
connection received after that: the RST_STREAM and GOAWAY error codes, and whether the client
closed it.
Prints its port first. Uses the independent python `h2` implementation, which refuses a
request whose Host disagrees with its :authority (RFC 9113 section 8.3.1).

With two arguments, CERT.pem and KEY.pem, it speaks TLS (ALPN h2) instead of h2c."""
import json
import socket
import ssl
import sys
import threading

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


def serve(sock):
    if TLS is not None:
        try:
            sock = TLS.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError):
            return
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
        client_side=False, validate_outbound_headers=False, normalize_outbound_headers=False))
    conn.initiate_connection()
    record = {"resets": [], "goaway": None, "closed": False}
    with LOCK:
        CONNECTIONS.append(record)
    sock.sendall(conn.data_to_send())
    seen = {"initial_window_size": None, "connection_window": 65535}
    requests = {}
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            record["closed"] = True
            return
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            events = []
        for event in events:
            if isinstance(event, h2.events.StreamReset):
                record["resets"].append(event.error_code.name)
            elif isinstance(event, h2.events.ConnectionTerminated):
                record["goaway"] = event.error_code.name
            if isinstance(event, h2.events.RemoteSettingsChanged):
                code = int(h2.settings.SettingCodes.INITIAL_WINDOW_SIZE)
                for changed, change in event.changed_settings.items():
                    if int(changed) == code:
                        seen["initial_window_size"] = change.new_value
            elif isinstance(event, h2.events.WindowUpdated) and event.stream_id == 0:
                seen["connection_window"] += event.delta
            elif isinstance(event, h2.events.RequestReceived):
                headers = {bytes(k): bytes(v) for k, v in event.headers}
                requests[event.stream_id] = {
                    "path": headers.get(b":path", b"").decode(),
                    "authority": headers.get(b":authority", b"").decode(),
                    "scheme": headers.get(b":scheme", b"").decode(),
                }
            elif isinstance(event, h2.events.StreamEnded):
                request = requests.pop(event.stream_id, {})
                answer = dict(seen, **request)
                if request.get("path") == "/connections":
                    with LOCK:
                        answer = [dict(c) for c in CONNECTIONS]
                body = json.dumps(answer).encode()
                malformed = [("connection", "close")] if request.get("path") == "/malformed" else []
                conn.send_headers(event.stream_id, [
                    (":status", "200"),
                    ("content-type", "application/json"),
                    ("content-length", str(len(body))),
                ] + malformed)
                if not malformed:  # a malformed answer's stream stays open for the reset
                    conn.send_data(event.stream_id, body, end_stream=True)
        try:
            sock.sendall(conn.data_to_send())
        except OSError:
            record["closed"] = True
            return


CONNECTIONS = []
LOCK = threading.Lock()
TLS = None
if len(sys.argv) == 3:
    TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    TLS.load_cert_chain(sys.argv[1], sys.argv[2])
    TLS.set_alpn_protocols(["h2"])

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen(16)
print(listener.getsockname()[1], flush=True)
while True:
    client, _ = listener.accept()
    threading.Thread(target=serve, args=(client,), daemon=True).start()
