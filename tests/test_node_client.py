"""A Node.js client built from generated @grpc/grpc-js stubs talks to the engine (scripts/node_client/)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import REPO

NODE = shutil.which("node")
GEN_NODE_STUBS = REPO / "scripts" / "gen_node_stubs.sh"
NODE_CLIENT = REPO / "scripts" / "node_client" / "dist" / "client.js"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not on PATH: the Node.js client needs Node 18+ and npm")


@pytest.fixture(scope="module")
def node_client() -> str:
    """Installs the npm packages if needed, generates the stubs from proto/ and compiles the client."""
    result = subprocess.run(["bash", str(GEN_NODE_STUBS)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{GEN_NODE_STUBS.name} failed:\n{result.stdout}{result.stderr}"
    return str(NODE_CLIENT)


def _default_successes(stub, pb) -> int:
    models = stub.Stats(pb.StatsRequest(model="default"), timeout=10).models
    return models[0].success.count if models else 0


def test_node_client_generates_streams_and_reads_stats(node_client, address, stub, proto_stubs):
    pb = proto_stubs.pb
    before = _default_successes(stub, pb)
    prompt, steps = "a lighthouse at dusk", 5
    result = subprocess.run(
        [NODE, node_client, address, "--prompt", prompt, "--size", "64", "--steps", str(steps), "--seed", "11"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)

    generated = summary["generate"]
    assert generated["model"] == "default" and generated["seed"] == "11"
    (image,) = generated["outputs"]
    assert image["mime_type"] == "image/png" and image["png_magic"]
    assert image["bytes"] == image["size_bytes"] > len(PNG_MAGIC)
    assert (image["png_width"], image["png_height"]) == (image["width"], image["height"]) == (64, 64)
    assert image["sha256"] == image["sha256_field"]

    streamed = summary["stream"]
    assert streamed["steps"] == list(range(steps)) and streamed["step_events"] == steps
    assert streamed["total_steps"] == [steps]
    assert streamed["completed_events"] == 1 and streamed["last_event"] == "completed"
    (streamed_image,) = streamed["outputs"]
    assert streamed_image["png_magic"] and streamed_image["sha256"] == image["sha256"]

    by_model = {m["model"]: m for m in summary["stats"]["models"]}
    assert by_model["default"]["success"] == before + 2
    assert summary["stats"]["device"] == "cpu"

    # The same request from Python's stubs gives the same bytes: both clients speak one contract.
    request = pb.GenerateRequest(prompt=prompt, width=64, height=64, num_inference_steps=steps, seed=11)
    (output,) = stub.Generate(request, timeout=60).outputs
    assert output.data.startswith(PNG_MAGIC) and output.sha256 == image["sha256"]
