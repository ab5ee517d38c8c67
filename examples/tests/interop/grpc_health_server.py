"""gRPC health servers (grpc.health.v1.Health/Check) from the independent grpcio
implementation, one per host given, all on one port:

    grpc_health_server.py CONTROL PORT HOST...

Each answers for the service `pods` (and the overall server, service ""): SERVING, unless the
file CONTROL has a line "HOST STATUS" for its host (STATUS: SERVING, NOT_SERVING, or an error
name such as UNAVAILABLE, answered as that gRPC error); any other service is NOT_FOUND, as the
reference health service answers. Every call is counted per host and service in
CONTROL.calls ("HOST SERVICE" per line). Prints "ready" once listening."""
import sys
from concurrent import futures

import grpc

SERVING_STATUS = {"UNKNOWN": 0, "SERVING": 1, "NOT_SERVING": 2}


def service_of(request):
    """The `service` field (1, a string) of a HealthCheckRequest."""
    at = 0
    while at < len(request):
        key = request[at]
        at += 1
        length = 0
        shift = 0
        while True:
            byte = request[at]
            at += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if key == 0x0A:
            return request[at:at + length].decode()
        at += length
    return ""


def wanted_status(control, host):
    try:
        with open(control) as lines:
            for line in lines:
                parts = line.split()
                if len(parts) == 2 and parts[0] == host:
                    return parts[1]
    except FileNotFoundError:
        pass
    return "SERVING"


def handler(control, host):
    def check(request, context):
        service = service_of(request)
        with open(control + ".calls", "a") as calls:
            calls.write(f"{host} {service or '-'}\n")
        if service not in ("", "pods"):
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        status = wanted_status(control, host)
        if status not in SERVING_STATUS:
            context.abort(getattr(grpc.StatusCode, status), "told to fail")
        return bytes([0x08, SERVING_STATUS[status]])

    method = grpc.unary_unary_rpc_method_handler(check)
    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": method})


def main():
    control, port, hosts = sys.argv[1], sys.argv[2], sys.argv[3:]
    servers = []
    for host in hosts:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        server.add_generic_rpc_handlers((handler(control, host),))
        if server.add_insecure_port(f"{host}:{port}") == 0:
            sys.exit(f"cannot listen on {host}:{port}")
        server.start()
        servers.append(server)
    print("ready", flush=True)
    servers[0].wait_for_termination()


if __name__ == "__main__":
    main()
