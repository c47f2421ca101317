"""Engine lifecycle as clients see it: not serving while warming up, then serving."""

from __future__ import annotations

import threading
import time

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
    from engine_service.errors import EngineNotReady
    from engine_service.runtime.engine import warmup_spec
    from engine_service.server.background import BackgroundServer

    server = BackgroundServer(build_engine([], device="cpu")).start()
    engine = server.engine
    server.stop()
    with pytest.raises(EngineNotReady):
        engine.submit(warmup_spec(engine.models["default"]))


def _start_stream(address, proto_stubs, steps: int, results: list) -> threading.Thread:
    pb = proto_stubs.pb

    def consume():
        with grpc.insecure_channel(address) as channel:
            stub = proto_stubs.grpc.EngineStub(channel)
            request = pb.GenerateRequest(prompt="a cat", width=256, height=256, num_inference_steps=steps)
            try:
                results.extend(stub.Stream(request, timeout=120))
            except grpc.RpcError as err:
                results.append(err)

    thread = threading.Thread(target=consume)
    thread.start()
    deadline = time.monotonic() + 30
    while not any(getattr(r, "HasField", lambda _: False)("step") for r in results) and time.monotonic() < deadline:
        time.sleep(0.01)
    return thread


def test_stop_lets_running_work_finish_within_the_grace_period(proto_stubs):
    from engine_service.bootstrap import build_engine
    from engine_service.server.background import BackgroundServer

    server = BackgroundServer(build_engine([], device="cpu")).start()
    results: list = []
    thread = _start_stream(server.address, proto_stubs, steps=30, results=results)
    server.stop(grace_s=60)
    thread.join(30)
    assert results and results[-1].HasField("completed"), results[-1]


def test_stop_cancels_work_that_outlives_the_grace_period(proto_stubs):
    from engine_service.bootstrap import build_engine
    from engine_service.server.background import BackgroundServer

    server = BackgroundServer(build_engine([], device="cpu")).start()
    results: list = []
    thread = _start_stream(server.address, proto_stubs, steps=1000, results=results)
    started = time.monotonic()
    server.stop(grace_s=0.5)
    thread.join(30)
    assert time.monotonic() - started < 15
    assert isinstance(results[-1], grpc.RpcError) and results[-1].code() == grpc.StatusCode.CANCELLED
    assert "shutting down" in results[-1].details()
