"""Out-of-band ORCA load report servers (xds.service.orca.v3.OpenRcaService/StreamCoreMetrics)
from the independent grpcio implementation, with the messages of Envoy's published protos
(xds-protos), one per HOST=CPU given, all on one port:

    orca_oob_server.py LOG PORT HOST=CPU...

Each stream gets, every report_interval its request asks for (at least 50 ms), an
OrcaLoadReport with that CPU utilization and rps_fractional 100. A HOST=unimplemented answers
UNIMPLEMENTED instead. Each stream opened is logged to LOG as "HOST SECONDS" (the interval
asked for). Prints "ready" once listening."""
import sys
import threading
import time
from concurrent import futures

import grpc
from xds.data.orca.v3 import orca_load_report_pb2
from xds.service.orca.v3 import orca_pb2

LOG_LOCK = threading.Lock()


def handler(log, host, cpu):
    def stream(request, context):
        interval = request.report_interval.seconds + request.report_interval.nanos / 1e9
        with LOG_LOCK, open(log, "a") as lines:
            lines.write(f"{host} {interval}\n")
        if cpu == "unimplemented":
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "no reports here")
        while context.is_active():
            yield orca_load_report_pb2.OrcaLoadReport(
                cpu_utilization=float(cpu), rps_fractional=100.0
            )
            time.sleep(max(interval, 0.05))

    method = grpc.unary_stream_rpc_method_handler(
        stream,
        request_deserializer=orca_pb2.OrcaLoadReportRequest.FromString,
        response_serializer=orca_load_report_pb2.OrcaLoadReport.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(
        "xds.service.orca.v3.OpenRcaService", {"StreamCoreMetrics": method}
    )


def main():
    log, port, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
    servers = []
    for pair in pairs:
        host, cpu = pair.split("=")
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((handler(log, host, cpu),))
        if server.add_insecure_port(f"{host}:{port}") == 0:
            sys.exit(f"cannot listen on {host}:{port}")
        server.start()
        servers.append(server)
    print("ready", flush=True)
    servers[0].wait_for_termination()


if __name__ == "__main__":
    main()
