"""Exit 0 when the engine's gRPC health check says SERVING, 1 otherwise.

    python healthcheck.py [HOST:PORT] [SERVICE]

The container image's HEALTHCHECK: it asks the plaintext health port (``--health-port``),
which needs neither TLS nor a token. SERVICE defaults to ``ditserve.v1.Engine``.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    target = argv[1] if len(argv) > 1 else "127.0.0.1:8081"
    service = argv[2] if len(argv) > 2 else "ditserve.v1.Engine"
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
        except grpc.RpcError as err:
            print(f"{target}: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{target}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
