"""OmniGen's pipeline constructs, loads from a directory and processes its reference images without torchvision.

The expected tensors are computed by hand from the PIL image, as torchvision's
``Normalize(0.5, 0.5)(ToTensor()(crop_image(image)))`` gives them: the image cut to multiples
of 16 around its centre (after scaling it down to ``max_image_size``), HWC -> CHW, ``/ 255``,
then ``(x - 0.5) / 0.5``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import OmniGenPipeline
from diffusers.pipelines.omnigen import pipeline_omnigen
from PIL import Image
from tiny_families.omnigen import build_tiny_omnigen

from engine_service.models import load_local_model
from engine_service.models.omnigen_processor import OmniGenProcessorWithoutTorchvision


@pytest.fixture(scope="module")
def pipeline() -> OmniGenPipeline:
    return build_tiny_omnigen()


def _picture(width: int, height: int) -> Image.Image:
    pixels = np.random.default_rng(7).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _by_hand(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1], as ToTensor then Normalize(0.5, 0.5)."""
    scaled = torch.tensor(pixels.transpose(2, 0, 1).copy(), dtype=torch.float32) / 255
    return (scaled - 0.5) / 0.5


def test_the_real_pipeline_class_gets_the_processor_without_torchvision(pipeline):
    assert type(pipeline) is OmniGenPipeline
    assert isinstance(pipeline.multimodal_processor, OmniGenProcessorWithoutTorchvision)


def test_an_input_image_is_cropped_to_multiples_of_16_around_its_centre_and_scaled_to_minus_one_to_one(pipeline):
    image = _picture(45, 37)  # 45 = 32 + 13: 6 columns off the left, 7 off the right; 37 = 32 + 5: rows 2 and 3
    expected = _by_hand(np.asarray(image)[2:34, 6:38])
    tensor = pipeline.multimodal_processor.process_image(image)
    assert tensor.dtype == torch.float32 and tensor.shape == (3, 32, 32)
    assert torch.equal(tensor, expected)
    assert tensor.min() >= -1 and tensor.max() <= 1


def test_a_larger_image_than_the_max_input_image_size_is_scaled_down_first(pipeline):
    processor = OmniGenProcessorWithoutTorchvision(pipeline.tokenizer, max_image_size=64)
    image = _picture(100, 80)
    scaled = np.asarray(image.resize((64, round(80 * 64 / 100)), resample=Image.BICUBIC))  # 64 x 51
    expected = _by_hand(scaled[1:49])  # 51 = 48 + 3: one row off the top, two off the bottom
    assert torch.equal(processor.process_image(image), expected)
    processor.reset_max_image_size(1024)
    assert torch.equal(processor.process_image(image), _by_hand(np.asarray(image)[0:80, 2:98]))


def test_the_pipelines_multimodal_input_holds_the_reference_as_computed_by_hand(pipeline):
    image = _picture(40, 48)
    data = pipeline.multimodal_processor(["<img><|image_1|></img> a red circle"], [[image]], height=32, width=32)
    # One pixel tensor each for the prompt and for the references alone (the image-guidance branch).
    assert len(data["input_pixel_values"]) == 2
    expected = _by_hand(np.asarray(image)[:, 4:36]).unsqueeze(0)
    assert all(torch.equal(pixels, expected) for pixels in data["input_pixel_values"])


def test_a_saved_directory_loads_through_the_registry_and_generates_what_the_pipeline_built_in_code_does(
    pipeline, tmp_path, monkeypatch
):
    pipeline.save_pretrained(tmp_path)
    # As in a fresh process: the pipeline module has no processor until the registry provides it.
    monkeypatch.delattr(pipeline_omnigen, "OmniGenMultiModalProcessor")
    model = load_local_model("omnigen", tmp_path, torch.device("cpu"), torch.float32)
    loaded = model.pipeline
    assert type(loaded) is OmniGenPipeline
    image = _picture(32, 32)

    def generate(pipe):
        torch.manual_seed(0)  # the pipeline samples the reference's VAE latents from the process-wide state
        return pipe(
            "<img><|image_1|></img> a red circle",
            input_images=[image],
            width=32,
            height=32,
            num_inference_steps=2,
            generator=torch.Generator().manual_seed(1),
            output_type="np",
        ).images

    assert np.array_equal(generate(loaded), generate(pipeline))
