"""FLUX.1: text-to-image (dev/schnell), Fill (image + mask), Kontext (image in context), image-to-image
and inpainting (image [+ mask] with a strength), ControlNet (a control image).

All three use the same tiny modules: 2 double-stream + 4 single-stream blocks, 8x VAE.
"""

import torch
from diffusers import (
    FluxControlImg2ImgPipeline,
    FluxControlInpaintPipeline,
    FluxControlNetImg2ImgPipeline,
    FluxControlNetInpaintPipeline,
    FluxControlNetModel,
    FluxControlNetPipeline,
    FluxControlPipeline,
    FluxFillPipeline,
    FluxImg2ImgPipeline,
    FluxInpaintPipeline,
    FluxKontextInpaintPipeline,
    FluxKontextPipeline,
)
from tiny_pipelines import build_tiny_flux, tiny_flux_components

from tiny_families import TinyCase

#: Fill's transformer sees the noisy latents, the masked image's latents (4 channels x 2x2 packing
#: each) and the mask at pixel resolution per latent pixel (8 x 8 x 2x2 packing).
FILL_IN_CHANNELS = 16 + 16 + 8 * 8 * 4


def build_tiny_flux_fill() -> FluxFillPipeline:
    return FluxFillPipeline(**tiny_flux_components(in_channels=FILL_IN_CHANNELS, out_channels=16))


def build_tiny_flux_kontext() -> FluxKontextPipeline:
    return FluxKontextPipeline(**tiny_flux_components())


def build_tiny_flux_img2img() -> FluxImg2ImgPipeline:
    return FluxImg2ImgPipeline(**tiny_flux_components())


def build_tiny_flux_inpaint() -> FluxInpaintPipeline:
    return FluxInpaintPipeline(**tiny_flux_components())


def wake_controlnet(controlnet: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """A ControlNet starts with zeroed output projections (its residuals are 0 until trained): give them
    random weights, so that its residuals change the image and a test sees where they are added."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for param in controlnet.parameters():
            if not param.any():
                param.normal_(0.0, 0.2)
    return controlnet.eval()


def build_tiny_flux_controlnet() -> FluxControlNetPipeline:
    components = tiny_flux_components()
    torch.manual_seed(0)
    # 2 + 2 blocks for the transformer's 2 + 4: a residual after every block, one per two single blocks.
    controlnet = FluxControlNetModel(
        patch_size=1,
        in_channels=16,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,
        axes_dims_rope=[4, 4, 8],
    )
    return FluxControlNetPipeline(**components, controlnet=wake_controlnet(controlnet))


#: FLUX.1 Control's transformer takes the noisy latents and the control image's latents (16 + 16).
CONTROL_IN_CHANNELS = 16 + 16


def build_tiny_flux_control() -> FluxControlPipeline:
    return FluxControlPipeline(**tiny_flux_components(in_channels=CONTROL_IN_CHANNELS, out_channels=16))


TEXT_ONLY = {"max_sequence_length": 16}
CASES = [
    TinyCase(
        name="flux",
        pipeline_class="FluxPipeline",
        build=build_tiny_flux,
        defaults={"width": 32, "height": 32, "steps": 6, "call_defaults": TEXT_ONLY},
    ),
    TinyCase(
        name="flux-fill",
        pipeline_class="FluxFillPipeline",
        build=build_tiny_flux_fill,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT_ONLY},
        inputs=(("image", (32, 32)), ("mask", (32, 32))),
    ),
    TinyCase(
        name="flux-kontext",
        pipeline_class="FluxKontextPipeline",
        build=build_tiny_flux_kontext,
        # Kontext resizes the input image to about 1024x1024 unless told not to.
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {**TEXT_ONLY, "_auto_resize": False}},
        inputs=(("image", (32, 32)),),
    ),
    # 4 steps at the default strength 0.6: the pipeline runs the last 3.
    TinyCase(
        name="flux-img2img",
        pipeline_class="FluxImg2ImgPipeline",
        build=build_tiny_flux_img2img,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT_ONLY},
        inputs=(("image", (32, 32)),),
    ),
    TinyCase(
        name="flux-inpaint",
        pipeline_class="FluxInpaintPipeline",
        build=build_tiny_flux_inpaint,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT_ONLY},
        inputs=(("image", (32, 32)), ("mask", (32, 32))),
    ),
    TinyCase(
        name="flux-controlnet",
        pipeline_class="FluxControlNetPipeline",
        build=build_tiny_flux_controlnet,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT_ONLY},
        inputs=(("control", (32, 32)),),
    ),
    TinyCase(
        name="flux-kontext-inpaint",
        pipeline_class="FluxKontextInpaintPipeline",
        build=lambda: FluxKontextInpaintPipeline.from_pipe(build_tiny_flux_kontext()),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {**TEXT_ONLY, "_auto_resize": False}},
        inputs=(("image", (32, 32)), ("mask", (32, 32))),
    ),
    TinyCase(
        name="flux-controlnet-img2img",
        pipeline_class="FluxControlNetImg2ImgPipeline",
        build=lambda: FluxControlNetImg2ImgPipeline.from_pipe(build_tiny_flux_controlnet()),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT_ONLY},
        inputs=(("image", (32, 32)), ("control", (32, 32))),
    ),
    TinyCase(
        name="flux-controlnet-inpaint",
        pipeline_class="FluxControlNetInpaintPipeline",
        build=lambda: FluxControlNetInpaintPipeline.from_pipe(build_tiny_flux_controlnet()),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT_ONLY},
        inputs=(("image", (32, 32)), ("mask", (32, 32)), ("control", (32, 32))),
    ),
    TinyCase(
        name="flux-control",
        pipeline_class="FluxControlPipeline",
        build=build_tiny_flux_control,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT_ONLY},
        inputs=(("control", (32, 32)),),
    ),
    TinyCase(
        name="flux-control-img2img",
        pipeline_class="FluxControlImg2ImgPipeline",
        build=lambda: FluxControlImg2ImgPipeline.from_pipe(build_tiny_flux_control()),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT_ONLY},
        inputs=(("image", (32, 32)), ("control", (32, 32))),
    ),
    TinyCase(
        name="flux-control-inpaint",
        pipeline_class="FluxControlInpaintPipeline",
        build=lambda: FluxControlInpaintPipeline.from_pipe(build_tiny_flux_control()),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT_ONLY},
        inputs=(("image", (32, 32)), ("mask", (32, 32)), ("control", (32, 32))),
    ),
]
