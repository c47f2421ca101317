"""What every error carries (request id, ErrorInfo), per-model health, both reflection versions,
the HTTP probes of the metrics port and the server's version, against the session engine."""

from __future__ import annotations

import urllib.error
import urllib.request

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from client_sdk import Client, console, errors

SMALL = {"width": 64, "height": 64, "num_inference_steps": 2}


def _error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    assert len(infos) == 1, status
    return infos[0]


def _trailer(err: grpc.RpcError, key: str) -> str | None:
    return dict(err.trailing_metadata() or ()).get(key)


@pytest.mark.parametrize(
    ("fields", "code", "reason"),
    [
        ({"width": 65}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST"),
        ({"model": "no-such-model"}, grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND"),
    ],
    ids=["validation", "unknown-model"],
)
def test_an_error_carries_a_request_id_and_an_error_info(stub, proto_stubs, fields, code, reason):
    pb = proto_stubs.pb
    request = pb.GenerateRequest(prompt="a cat", **{**SMALL, **fields})
    for call in (stub.Generate, lambda r, **kw: list(stub.Stream(r, **kw))):
        with pytest.raises(grpc.RpcError) as info:
            call(request, timeout=30)
        assert info.value.code() == code
        generated = _trailer(info.value, "x-request-id")
        assert generated and len(generated) == 32, info.value.trailing_metadata()
        assert (_error_info(info.value).reason, _error_info(info.value).domain) == (reason, "ditserve")
        # The caller's id, as a header or as the request field, is the one echoed.
        with pytest.raises(grpc.RpcError) as info:
            call(request, timeout=30, metadata=(("x-request-id", "from-header-1"),))
        assert _trailer(info.value, "x-request-id") == "from-header-1"
        with_field = pb.GenerateRequest(request_id="from-field-1", prompt="a cat", **{**SMALL, **fields})
        with pytest.raises(grpc.RpcError) as info:
            call(with_field, timeout=30, metadata=(("x-request-id", "from-header-2"),))
        assert _trailer(info.value, "x-request-id") == "from-field-1"
    assert stub.Generate(pb.GenerateRequest(prompt="a cat", **SMALL), timeout=60).outputs, "still serving"


def test_a_header_request_id_names_the_request_that_runs(stub, proto_stubs):
    pb = proto_stubs.pb
    reply, call = stub.Generate.with_call(
        pb.GenerateRequest(prompt="a cat", **SMALL), timeout=60, metadata=(("x-request-id", "hdr-runs-1"),)
    )
    assert reply.request_id == "hdr-runs-1"
    assert dict(call.trailing_metadata())["x-request-id"] == "hdr-runs-1"


def test_the_sdk_exposes_the_reason_and_the_request_id(address):
    with Client(address, timeout=30) as client:
        with pytest.raises(errors.NotFoundError) as info:
            client.generate("a cat", model="nope", request_id="sdk-reason-1")
        assert info.value.reason == "MODEL_NOT_FOUND" and info.value.request_id == "sdk-reason-1"
        with pytest.raises(errors.NotFoundError) as info:
            client.stats(model="nope")
        assert info.value.reason == "MODEL_NOT_FOUND" and info.value.domain == "ditserve"
        assert info.value.request_id, "a Stats error carries an id too"


def test_health_answers_per_model(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("default", "local", "wan"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.RpcError) as info:
        health.Check(health_pb2.HealthCheckRequest(service="no-such-model"), timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_answers_as_v1_and_v1alpha(channel):
    from grpc_reflection.v1alpha import reflection_pb2

    for version in ("v1", "v1alpha"):
        method = channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        names = {s.name for r in method(iter([ask]), timeout=5) for s in r.list_services_response.service}
        assert {"ditserve.v1.Engine", "grpc.health.v1.Health"} <= names, version
        ask = reflection_pb2.ServerReflectionRequest(file_containing_symbol="ditserve.v1.Engine")
        (reply,) = list(method(iter([ask]), timeout=5))
        assert reply.file_descriptor_response.file_descriptor_proto, version


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_the_metrics_port_serves_metrics_and_probes_only(engine_server):
    port = engine_server.server.metrics_port
    status, text = _get(port, "/metrics")
    assert status == 200 and "ditserve_requests_total" in text
    assert _get(port, "/healthz") == (200, "ok\n")
    assert _get(port, "/readyz") == (200, "ready\n")
    for path in ("/", "/metrics/x", "/favicon.ico"):
        assert _get(port, path)[0] == 404, path


def test_readyz_is_503_until_warm_and_after_stop():
    from engine_service.bootstrap import build_engine
    from engine_service.config import ServerConfig
    from engine_service.server.background import BackgroundServer

    config = ServerConfig(host="127.0.0.1", port=0, metrics_port=0)
    server = BackgroundServer(build_engine([], device="cpu"), config).start(warm=False)
    port = server.server.metrics_port
    try:
        assert _get(port, "/readyz") == (503, "not ready: warming up\n")
        assert _get(port, "/healthz")[0] == 200
        server.call(server.server.warm_up())
        assert _get(port, "/readyz")[0] == 200
    finally:
        server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_list_models_and_stats_report_the_server_version(address):
    from engine_service import __version__

    with Client(address, timeout=30) as client:
        for info in (client.list_models().server, client.stats().server):
            assert (info.name, info.version, info.api) == ("ditserve", __version__, "ditserve.v1")
            assert {"python", "torch", "diffusers"} <= set(info.build)
        line = console.models_table(client.list_models()).splitlines()[-1]
        assert line.startswith(f"server: ditserve {__version__} (ditserve.v1; diffusers ")


def test_wait_ready_watches_health_per_model(address):
    import asyncio

    from client_sdk import AsyncClient

    with Client(address) as client:
        client.wait_ready(timeout=10, model="wan")
        with pytest.raises(errors.NotFoundError, match="no model named 'nope'"):
            client.wait_ready(timeout=10, model="nope")

    async def twin() -> None:
        async with AsyncClient(address) as client:
            await client.wait_ready(timeout=10, model="local")
            with pytest.raises(errors.NotFoundError):
                await client.wait_ready(timeout=10, model="nope")

    asyncio.run(twin())


def test_wait_ready_on_an_engine_that_is_not_there_gives_up_in_time():
    import time

    from tests.conftest import free_port

    started = time.monotonic()
    with Client(f"127.0.0.1:{free_port()}") as client, pytest.raises(errors.UnavailableError, match="not serving"):
        client.wait_ready(timeout=1.5)
    assert time.monotonic() - started < 10
