"""Shared fixtures: one engine server per test session, stubs compiled from proto/ alone.

Imports cost seconds per process and the tiny pipelines are shared, so the
server is session-scoped: it runs in a background thread with its own event
loop, and tests talk to it over gRPC on a free loopback port like any client.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import socket
import subprocess
import sys
import time
import types

import grpc
import pytest

# One intra-op thread per process, set before torch loads and inherited by every server and rank the
# tests start: the tiny models gain nothing from more, and the suite runs engines beside the test
# process on two cores, where threads that wait on each other cost many times their work.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "proto"


@pytest.fixture(scope="session")
def local_model_dir(tmp_path_factory) -> pathlib.Path:
    """A random tiny FLUX pipeline saved as a diffusers directory, to exercise ``--model NAME=PATH`` loading."""
    from tiny_pipelines import build_tiny_flux

    directory = tmp_path_factory.mktemp("models") / "tiny-flux"
    build_tiny_flux(seed=1).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def engine_server(local_model_dir):
    """A running engine serving the builtin (trained) ``default``, ``local`` (a random tiny FLUX loaded from
    a directory) and ``wan`` (a tiny Wan 2.1 text-to-video pipeline built in code, 16x16 and 5 frames by
    default)."""
    import torch
    from tiny_pipelines import build_tiny_wan

    from engine_service.bootstrap import ModelSource, build_engine
    from engine_service.config import ServerConfig
    from engine_service.models import model_from_pipeline
    from engine_service.runtime.engine import AsyncEngine
    from engine_service.server.background import BackgroundServer

    loaded = build_engine([ModelSource("default"), ModelSource("local", str(local_model_dir))], device="cpu")
    wan_defaults = {"width": 16, "height": 16, "frames": 5, "steps": 6, "call_defaults": {"max_sequence_length": 16}}
    wan = model_from_pipeline("wan", build_tiny_wan(), torch.device("cpu"), wan_defaults)
    engine = AsyncEngine({**loaded.models, "wan": wan}, "default", loaded.limits, "cpu", loaded.batching)
    server = BackgroundServer(engine, ServerConfig(host="127.0.0.1", port=0, metrics_port=0)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def address(engine_server) -> str:
    return engine_server.address


@pytest.fixture(scope="session")
def proto_stubs(tmp_path_factory) -> types.SimpleNamespace:
    """Python stubs compiled from proto/ alone (not the SDK's copy): the outside view of the contract."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("stubs")
    proto = PROTO_ROOT / "ditserve" / "v1" / "engine.proto"
    code = protoc.main(["protoc", f"-I{PROTO_ROOT}", f"--python_out={out}", f"--grpc_python_out={out}", str(proto)])
    assert code == 0, "protoc failed on proto/ditserve/v1/engine.proto"
    sys.path.insert(0, str(out))
    try:
        pb = importlib.import_module("ditserve.v1.engine_pb2")
        pb_grpc = importlib.import_module("ditserve.v1.engine_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    return types.SimpleNamespace(pb=pb, grpc=pb_grpc)


@pytest.fixture(scope="session")
def channel(address):
    with grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", -1)]) as ch:
        yield ch


@pytest.fixture(scope="session")
def stub(channel, proto_stubs):
    """A raw Engine stub built from proto/ alone."""
    return proto_stubs.grpc.EngineStub(channel)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(metrics_port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The Prometheus endpoint's samples: (name, sorted labels) -> value."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def wait_serving(address: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Block until the health service at ``address`` says SERVING."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"{address} not SERVING after {timeout} s")
