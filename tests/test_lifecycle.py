"""Engine lifecycle as clients see it: not serving while warming up, then serving."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status


def test_requests_while_warming_up_get_unavailable_with_a_retry_hint(proto_stubs):
    from engine_service.bootstrap import build_engine
    from engine_service.server.background import BackgroundServer

    server = BackgroundServer(build_engine([], device="cpu")).start(warm=False)
    pb = proto_stubs.pb
    try:
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            stub = proto_stubs.grpc.EngineStub(channel)
            request = pb.GenerateRequest(prompt="a cat", width=64, height=64, num_inference_steps=2)
            assert (
                health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                == health_pb2.HealthCheckResponse.NOT_SERVING
            )
            with pytest.raises(grpc.RpcError) as info:
                stub.Generate(request, timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            details = rpc_status.from_call(info.value).details
            assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in details)
            # Listing models works before warm-up: it needs no pipeline run.
            assert [m.name for m in stub.ListModels(pb.ListModelsRequest(), timeout=5).models] == ["default"]

            server.call(server.server.warm_up())
            assert (
                health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                == health_pb2.HealthCheckResponse.SERVING
            )
            assert stub.Generate(request, timeout=60).outputs
    finally:
        server.stop()


def test_stop_reports_not_serving_and_refuses_new_work(proto_stubs):
    from engine_service.bootstrap import build_engine
    from engine_service.runtime.engine import warmup_spec
    from engine_service.runtime.errors import EngineNotReady
    from engine_service.server.background import BackgroundServer

    server = BackgroundServer(build_engine([], device="cpu")).start()
    engine = server.engine
    server.stop()
    with pytest.raises(EngineNotReady):
        engine.submit(warmup_spec(engine.models["default"]))
