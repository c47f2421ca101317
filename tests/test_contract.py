"""The contract as other programs see it: fresh stubs, health, reflection."""

from __future__ import annotations

import re
import subprocess
import sys

from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.conftest import REPO


def test_checked_in_stubs_match_a_fresh_generation():
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_protos.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stale_stubs_are_detected(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import gen_protos
    finally:
        sys.path.remove(str(REPO / "scripts"))
    stub_dir = tmp_path / "stubs"
    gen_protos.generate(stub_dir)
    monkeypatch.setattr(gen_protos, "STUB_DIR", stub_dir)
    assert gen_protos.stale_files() == []
    grpc_file = stub_dir / "engine_pb2_grpc.py"
    grpc_file.write_text(grpc_file.read_text() + "\n# edited by hand\n")
    assert gen_protos.stale_files() == ["engine_pb2_grpc.py"]


def test_health_is_serving(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "ditserve.v1.Engine"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_engine_service(channel):
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"ditserve.v1.Engine", "grpc.health.v1.Health"} <= names


def test_reflection_serves_the_proto_file(channel):
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="ditserve.v1.Engine")
    (response,) = list(reflection.ServerReflectionInfo(iter([request]), timeout=5))
    assert response.file_descriptor_response.file_descriptor_proto, "reflection returned no descriptor"


#: A grpcurl call in the README: its `-d` JSON body and the Engine method it goes to.
GRPCURL_CALL = re.compile(r"-d '(?P<body>\{.*?\})'[\s\\]*\S+ ditserve\.v1\.Engine/(?P<method>\w+)", re.S)


def test_readme_grpcurl_examples_match_the_contract_served_by_reflection(channel):
    """Every symbol and JSON body in the README's grpcurl commands resolves the way grpcurl resolves it."""
    readme = (REPO / "README.md").read_text()
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service = pool.FindServiceByName("ditserve.v1.Engine")
    for symbol in re.findall(r"grpcurl -plaintext \S+ describe (\S+)", readme):
        assert pool.FindFileContainingSymbol(symbol), symbol
    calls = GRPCURL_CALL.findall(readme)
    assert {method for _, method in calls} >= {"Generate", "Stream", "Stats"}
    for body, method in calls:
        request_class = message_factory.GetMessageClass(service.methods_by_name[method].input_type)
        json_format.Parse(body, request_class())  # ParseError names a field the contract does not have


def test_every_proto_field_is_documented():
    """Each field, enum value and rpc in the contract has a comment right above it."""
    lines = (REPO / "proto" / "ditserve" / "v1" / "engine.proto").read_text().splitlines()
    undocumented = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        is_field = stripped.endswith(";") and "=" in stripped and not stripped.startswith(("//", "option", "syntax"))
        is_rpc = stripped.startswith("rpc ")
        if not (is_field or is_rpc):
            continue
        if not lines[index - 1].strip().startswith("//"):
            undocumented.append(f"line {index + 1}: {stripped}")
    assert not undocumented, "undocumented proto fields:\n" + "\n".join(undocumented)


def test_the_base_install_is_the_client_only():
    """`pip install ditserve` without extras must not pull torch or the engine's libraries."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {dep.split(">")[0].split("=")[0].split("<")[0].strip().lower() for dep in project["dependencies"]}
    assert base == {"grpcio", "grpcio-status", "grpcio-health-checking", "protobuf", "tqdm"}
    assert "torch==2.13.0" in project["optional-dependencies"]["engine"]
