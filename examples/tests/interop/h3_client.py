"""An HTTP/3 client (aioquic) for the gateway's HTTP/3 tests.

Usage: h3_client.py PORT SNI REQUESTS_JSON [CERT KEY]

Connects over QUIC to 127.0.0.1:PORT with the server name SNI (certificates are not
verified; an optional client certificate is presented), sends the requests of REQUESTS_JSON —
a list of {"method", "path", "body_bytes"} — on one connection, all at once, and prints one
JSON object: {"connected": true, "alpn": ..., "responses": [{"status", "headers", "body",
"body_sha256", "body_bytes"}]} in request order, or {"connected": false, "error": ...} when
the handshake fails.
"""

import asyncio
import hashlib
import json
import ssl
import sys

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.answers = {}
        self.waiters = {}

    def quic_event_received(self, event):
        if isinstance(event, ConnectionTerminated):
            for waiter in self.waiters.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError(event.reason_phrase))
            return
        for h3_event in self.h3.handle_event(event):
            stream = getattr(h3_event, "stream_id", None)
            if stream not in self.waiters:
                continue
            answer = self.answers.setdefault(stream, {"headers": [], "body": b""})
            if isinstance(h3_event, HeadersReceived):
                answer["headers"].extend(h3_event.headers)
            elif isinstance(h3_event, DataReceived):
                answer["body"] += h3_event.data
            if getattr(h3_event, "stream_ended", False) and not self.waiters[stream].done():
                self.waiters[stream].set_result(answer)

    async def request(self, sni, port, method, path, body):
        stream = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", f"{sni}:{port}".encode()),
            (b":path", path.encode()),
        ]
        if body:
            headers.append((b"content-length", str(len(body)).encode()))
        self.waiters[stream] = asyncio.get_running_loop().create_future()
        self.h3.send_headers(stream, headers, end_stream=not body)
        if body:
            self.h3.send_data(stream, body, end_stream=True)
        self.transmit()
        answer = await asyncio.wait_for(self.waiters[stream], 20)
        fields = {}
        for name, value in answer["headers"]:
            fields.setdefault(name.decode(), []).append(value.decode())
        body = answer["body"]
        return {
            "status": int(fields.pop(":status")[0]),
            "headers": fields,
            "body": body.decode(errors="replace") if len(body) < 65536 else "",
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }


async def main():
    port, sni, requests = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    configuration = QuicConfiguration(
        is_client=True, alpn_protocols=H3_ALPN, server_name=sni, verify_mode=ssl.CERT_NONE
    )
    # A socket that stopped serving fails the test fast, not after aioquic's minute.
    configuration.idle_timeout = 5.0
    if len(sys.argv) > 5:
        configuration.load_cert_chain(sys.argv[4], sys.argv[5])
    try:
        async with connect(
            "127.0.0.1", port, configuration=configuration, create_protocol=Client
        ) as client:
            alpn = client._quic.tls.alpn_negotiated
            answers = await asyncio.gather(
                *(
                    client.request(
                        sni, port, r["method"], r["path"], bytes(i % 251 for i in range(r.get("body_bytes", 0)))
                    )
                    for r in requests
                )
            )
            print(json.dumps({"connected": True, "alpn": alpn, "responses": answers}))
    except (ConnectionError, asyncio.TimeoutError) as error:
        print(json.dumps({"connected": False, "error": repr(error)}))


asyncio.run(asyncio.wait_for(main(), 30))
