"""Prints, as JSON, the HTTP/2 settings a server announces on a cleartext (prior-knowledge)
connection to 127.0.0.1:PORT: its SETTINGS values and the connection window it opens with a
WINDOW_UPDATE on stream 0. Uses the independent python `h2` implementation."""
import json
import socket
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings

port = int(sys.argv[1])
sock = socket.create_connection(("127.0.0.1", port), timeout=5)
conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
sock.sendall(conn.data_to_send())
settings, connection_window = None, 65535
# Read until the server's SETTINGS and its connection WINDOW_UPDATE (if any) have come.
for _ in range(20):
    try:
        sock.settimeout(1 if settings is not None else 5)
        data = sock.recv(65536)
    except socket.timeout:
        break
    if not data:
        break
    for event in conn.receive_data(data):
        if isinstance(event, h2.events.RemoteSettingsChanged):
            settings = {int(code): change.new_value for code, change in event.changed_settings.items()}
        elif isinstance(event, h2.events.WindowUpdated) and event.stream_id == 0:
            connection_window += event.delta
    sock.sendall(conn.data_to_send())
    if settings is not None and connection_window != 65535:
        break
print(json.dumps({
    "max_concurrent_streams": (settings or {}).get(int(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)),
    "initial_window_size": (settings or {}).get(int(h2.settings.SettingCodes.INITIAL_WINDOW_SIZE)),
    "connection_window": connection_window,
}))
