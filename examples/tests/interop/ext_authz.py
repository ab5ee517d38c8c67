#!/usr/bin/env python3
"""External authorizers for the gateway's extAuth tests, written against the published APIs:
an HTTP one (http.server) and a gRPC one (grpcio, with Envoy's
envoy.service.auth.v3 protos from the xds-protos package).

usage: ext_authz.py http|grpc LOG_FILE

Prints "listening on PORT" once serving (port chosen by the OS). Every check is appended to
LOG_FILE as one JSON line. Decisions:
  - a path containing /slow: answer after 3 s;
  - a path containing /broken: HTTP: a reply that is not HTTP; gRPC: UNAVAILABLE;
  - `authorization: Bearer allow`: allowed (HTTP 200 with x-current-user and x-other;
    gRPC: ok_response setting x-current-user, appending x-appended, removing x-remove-me);
  - anything else: denied (HTTP 403 with x-reason and a body; gRPC: PERMISSION_DENIED with
    denied_response 401, x-reason and a body).
"""

import json
import sys
import threading
import time

LOCK = threading.Lock()


def log(path, record):
    with LOCK, open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def serve_http(log_path):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            log(log_path, {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            })
            if "/slow" in self.path:
                time.sleep(3)
            if "/broken" in self.path:
                self.wfile.write(b"this is not HTTP\r\n\r\n")
                self.close_connection = True
                return
            if self.headers.get("authorization") == "Bearer allow":
                self.send_response(200)
                self.send_header("x-current-user", "alice")
                self.send_header("x-other", "not-copied")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            text = b"denied by python"
            self.send_response(403)
            self.send_header("x-reason", "no-token")
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        do_GET = do_POST = do_PUT = do_DELETE = handle_any

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


def serve_grpc(log_path):
    from concurrent import futures

    import grpc
    from envoy.config.core.v3 import base_pb2
    from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
    from envoy.type.v3 import http_status_pb2
    from google.protobuf import wrappers_pb2
    from google.rpc import code_pb2, status_pb2

    def header(key, value, append=None):
        option = base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, value=value))
        if append is not None:
            option.append.CopyFrom(wrappers_pb2.BoolValue(value=append))
        return option

    class Authorizer(external_auth_pb2_grpc.AuthorizationServicer):
        def Check(self, request, context):
            attributes = request.attributes
            http = attributes.request.http
            log(log_path, {
                "method": http.method,
                "path": http.path,
                "host": http.host,
                "scheme": http.scheme,
                "protocol": http.protocol,
                "size": http.size,
                "headers": dict(http.headers),
                "body": http.body,
                "source": attributes.source.address.socket_address.address,
                "context_extensions": dict(attributes.context_extensions),
            })
            if "/slow" in http.path:
                time.sleep(3)
            if "/broken" in http.path:
                context.abort(grpc.StatusCode.UNAVAILABLE, "authorizer is broken")
            if http.headers.get("authorization") == "Bearer allow":
                return external_auth_pb2.CheckResponse(
                    status=status_pb2.Status(code=code_pb2.OK),
                    ok_response=external_auth_pb2.OkHttpResponse(
                        headers=[header("x-current-user", "alice"),
                                 header("x-appended", "two", append=True)],
                        headers_to_remove=["x-remove-me"],
                    ),
                )
            return external_auth_pb2.CheckResponse(
                status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED),
                denied_response=external_auth_pb2.DeniedHttpResponse(
                    status=http_status_pb2.HttpStatus(code=http_status_pb2.Unauthorized),
                    headers=[header("x-reason", "grpc-denied")],
                    body="denied by grpc",
                ),
            )

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(Authorizer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening on {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    mode, log_path = sys.argv[1], sys.argv[2]
    if mode == "http":
        serve_http(log_path)
    else:
        serve_grpc(log_path)
