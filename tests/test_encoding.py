"""Encoding off the device thread: outputs are encoded on encoder threads while the device
thread takes the next request, and the bytes are those of encoding on the device thread.

Runs on the session's engine (``default``: the trained image model; ``wan``: a tiny
text-to-video pipeline).
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from client_sdk import AsyncClient, Client
from client_sdk._proto import engine_pb2 as pb

CASES = {
    "png": dict(model="default", width=64, height=64, num_inference_steps=3, output_format="png"),
    "jpeg": dict(model="default", width=64, height=64, num_inference_steps=3, output_format="jpeg"),
    "webp": dict(model="default", width=64, height=64, num_inference_steps=3, output_format="webp"),
    "mp4": dict(model="wan", num_frames=9, num_inference_steps=3, output_format="mp4"),
}
_FORMATS = {
    "png": pb.OUTPUT_FORMAT_PNG,
    "jpeg": pb.OUTPUT_FORMAT_JPEG,
    "webp": pb.OUTPUT_FORMAT_WEBP,
    "mp4": pb.OUTPUT_FORMAT_MP4,
}


def _encoded_on_the_device_thread(engine, request: dict, prompt: str, seed: int) -> list[str]:
    """The request run as one call on the engine's device thread, encoded right there: sha256 per output."""
    from engine_service.runtime.worker import Member
    from engine_service.server.validation import validate

    fields = {k: v for k, v in request.items() if k != "output_format"}
    message = pb.GenerateRequest(prompt=prompt, seed=seed, output_format=_FORMATS[request["output_format"]], **fields)
    spec = validate(message, engine.models[request["model"]], engine.limits)

    def run() -> list[str]:
        (decoded,) = engine.executor.execute([Member(spec)])
        return [output.sha256 for output in decoded.encode().outputs]

    return engine.run_on_worker(run).result(timeout=300)


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_encoded_off_the_device_thread_are_the_same_bytes(engine_server, case):
    request = CASES[case]
    with Client(engine_server.address, timeout=300) as client:
        served = client.generate("a red circle", seed=11, **request)
    assert [hashlib.sha256(o.data).hexdigest() for o in served.outputs] == _encoded_on_the_device_thread(
        engine_server.engine, request, "a red circle", 11
    )
    assert served.timings.encode_ms > 0


async def _two_videos(address: str) -> list:
    async with AsyncClient(address, timeout=300) as client:
        return await asyncio.gather(
            client.generate("a cat", seed=1, **CASES["mp4"]), client.generate("a dog", seed=2, **CASES["mp4"])
        )


def test_the_next_request_starts_on_the_device_while_a_video_encodes(engine_server):
    """The second of two requests sent together starts before the first's video is encoded.

    With one request per call, the second waits in the queue for the first's call only. It
    starts on the device (the end of its queue time) no later than the first's encoding
    starts, so its queue time is at most the first's total time less the first's encoding
    time; encoding on the device thread would add the encoding to its wait.
    """
    first, second = sorted(asyncio.run(_two_videos(engine_server.address)), key=lambda r: r.timings.queue_ms)
    assert first.outputs[0].mime_type == "video/mp4" and second.outputs[0].mime_type == "video/mp4"
    assert second.timings.queue_ms <= first.timings.total_ms - first.timings.encode_ms
