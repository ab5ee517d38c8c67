"""An independent HBONE client built on python-h2 and Python's ssl module.

Usage: h2_hbone_client.py HOST PORT CERT KEY CA AUTHORITY STREAMS
Opens one mTLS connection (ALPN h2, no SNI), sends STREAMS concurrent CONNECT requests with only
:method and :authority, sends "stream-N" on each and half-closes, reads each stream until the
server ends it, and prints one JSON object: statuses, bodies, and the server's SETTINGS.
"""
import json
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings

host, port, cert, key, ca, authority, streams = sys.argv[1:8]
streams = int(streams)

context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.minimum_version = ssl.TLSVersion.TLSv1_3
context.load_cert_chain(cert, key)
context.load_verify_locations(ca)
context.check_hostname = False  # SPIFFE identities are URI SANs; there is no host name
context.set_alpn_protocols(["h2"])
raw = socket.create_connection((host, int(port)))
tls = context.wrap_socket(raw)  # no server_hostname: no SNI, as HBONE clients do
assert tls.selected_alpn_protocol() == "h2", tls.selected_alpn_protocol()

connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
connection.initiate_connection()
stream_ids = []
for index in range(streams):
    stream_id = connection.get_next_available_stream_id()
    connection.send_headers(stream_id, [(":method", "CONNECT"), (":authority", authority)])
    connection.send_data(stream_id, f"stream-{index}".encode(), end_stream=True)
    stream_ids.append(stream_id)
tls.sendall(connection.data_to_send())

statuses, bodies, ended = {}, {sid: b"" for sid in stream_ids}, set()
settings = {}
while len(ended) < streams:
    data = tls.recv(65536)
    if not data:
        break
    for event in connection.receive_data(data):
        if isinstance(event, h2.events.ResponseReceived):
            statuses[event.stream_id] = dict(event.headers)[b":status"].decode()
        elif isinstance(event, h2.events.DataReceived):
            bodies[event.stream_id] += event.data
            connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
            ended.add(event.stream_id)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for setting, change in event.changed_settings.items():
                settings[h2.settings.SettingCodes(setting).name] = change.new_value
    tls.sendall(connection.data_to_send())

print(json.dumps({
    "statuses": [statuses.get(sid) for sid in stream_ids],
    "bodies": [bodies[sid].decode(errors="replace") for sid in stream_ids],
    "settings": settings,
    "outbound_window": connection.outbound_flow_control_window,
}))
