"""An independent HBONE server built on python-h2 and Python's ssl module.

Usage: h2_hbone_server.py CERT KEY CA [HOST:PORT]
Listens on HOST:PORT (default 127.0.0.1 and a free port; the port is printed on the first
stdout line), requires a client certificate,
accepts one connection, answers every CONNECT with 200 and echoes its bytes, and when the
client closes prints one JSON object: each request's header list, the client's SETTINGS, the
connection-level window the client granted, and whether SNI was sent.
"""
import json
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings

cert, key, ca = sys.argv[1:4]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
context.load_verify_locations(ca)
context.verify_mode = ssl.CERT_REQUIRED
context.set_alpn_protocols(["h2"])
sni_seen = []
context.sni_callback = lambda sock, name, ctx: sni_seen.append(name)

host, port = (sys.argv[4].rsplit(":", 1) if len(sys.argv) > 4 else ("127.0.0.1", "0"))
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((host, int(port)))
listener.listen(1)
print(listener.getsockname()[1], flush=True)
raw, _ = listener.accept()
tls = context.wrap_socket(raw, server_side=True)

connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
connection.initiate_connection()
tls.sendall(connection.data_to_send())
requests, settings, window_increments = [], {}, 0
while True:
    try:
        data = tls.recv(65536)
    except (ConnectionResetError, ssl.SSLError):
        break
    if not data:
        break
    for event in connection.receive_data(data):
        if isinstance(event, h2.events.RequestReceived):
            requests.append([[k.decode(), v.decode()] for k, v in event.headers])
            connection.send_headers(event.stream_id, [(":status", "200")])
        elif isinstance(event, h2.events.DataReceived):
            connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if event.data:
                connection.send_data(event.stream_id, event.data)
        elif isinstance(event, h2.events.StreamEnded):
            connection.end_stream(event.stream_id)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for setting, change in event.changed_settings.items():
                settings[h2.settings.SettingCodes(setting).name] = change.new_value
        elif isinstance(event, h2.events.WindowUpdated) and event.stream_id == 0:
            window_increments += event.delta
    try:
        tls.sendall(connection.data_to_send())
    except OSError:
        break

print(json.dumps({
    "requests": requests,
    "settings": settings,
    "connection_window_increment": window_increments,
    "sni": sni_seen,
}), flush=True)
