"""Z-Image: 2 noise-refiner, 2 context-refiner and 2 main blocks, a tiny Qwen3 encoder, 8x VAE."""

import torch
from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    ZImageControlNetInpaintPipeline,
    ZImageControlNetModel,
    ZImageControlNetPipeline,
    ZImageImg2ImgPipeline,
    ZImageInpaintPipeline,
    ZImageOmniPipeline,
    ZImagePipeline,
    ZImageTransformer2DModel,
)
from tiny_pipelines import tiny_vae
from tiny_tokenizers import qwen_vl_tokenizer
from transformers import Qwen3Config, Qwen3Model, Siglip2VisionConfig, Siglip2VisionModel
from transformers.models.siglip2.image_processing_pil_siglip2 import Siglip2ImageProcessorPil

from tiny_families import TinyCase

#: The tiny Z-Image transformer (Omni adds a SigLIP branch to it).
TRANSFORMER = {
    "all_patch_size": (2,),
    "all_f_patch_size": (1,),
    "in_channels": 16,
    "dim": 32,
    "n_layers": 2,
    "n_refiner_layers": 2,
    "n_heads": 2,
    "n_kv_heads": 2,
    "norm_eps": 1e-5,
    "qk_norm": True,
    "cap_feat_dim": 16,
    "rope_theta": 256.0,
    "t_scale": 1000.0,
    "axes_dims": [8, 4, 4],
    "axes_lens": [256, 32, 32],
}


def build_tiny_z_image(seed: int = 0) -> ZImagePipeline:
    # Chat markers as single tokens, as in Qwen3's: spelled in bytes, the chat header fills most of the 16
    # tokens kept, and the prompt and CFG's empty one would encode alike.
    tokenizer = qwen_vl_tokenizer()
    torch.manual_seed(seed)
    transformer = ZImageTransformer2DModel(**TRANSFORMER).eval()
    # The pad tokens are created with torch.empty: give them fixed values.
    with torch.no_grad():
        transformer.x_pad_token.fill_(1.0)
        transformer.cap_pad_token.fill_(1.0)
    torch.manual_seed(seed)
    text_encoder = Qwen3Model(
        Qwen3Config(
            hidden_size=16,
            intermediate_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=512,
        )
    ).eval()
    return ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=tiny_vae(seed, latent_channels=16),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )


CASES = [
    TinyCase(
        name="z-image",
        pipeline_class="ZImagePipeline",
        build=build_tiny_z_image,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
    TinyCase(
        name="z-image-img2img",
        pipeline_class="ZImageImg2ImgPipeline",
        build=lambda: ZImageImg2ImgPipeline.from_pipe(build_tiny_z_image()),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
        inputs=(("image", (32, 32)),),
    ),
    TinyCase(
        name="z-image-inpaint",
        pipeline_class="ZImageInpaintPipeline",
        build=lambda: ZImageInpaintPipeline.from_pipe(build_tiny_z_image()),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
        inputs=(("image", (32, 32)), ("mask", (32, 32))),
    ),
]


def build_tiny_z_image_controlnet() -> ZImageControlNetPipeline:
    from tiny_families.flux import wake_controlnet

    base = build_tiny_z_image()
    torch.manual_seed(0)
    # Hints after both main layers; the ControlNet shares the transformer's embedders and refiners.
    controlnet = ZImageControlNetModel(
        control_layers_places=[0, 1],
        control_in_dim=16,
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        dim=32,
        n_refiner_layers=2,
        n_heads=2,
        n_kv_heads=2,
    )
    return ZImageControlNetPipeline(**base.components, controlnet=wake_controlnet(controlnet))


CASES.append(
    TinyCase(
        name="z-image-controlnet",
        pipeline_class="ZImageControlNetPipeline",
        build=build_tiny_z_image_controlnet,
        # The chat template's 17 byte tokens before the prompt leave it room only past 16.
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 48}},
        inputs=(("control", (32, 32)),),
    )
)


def build_tiny_z_image_controlnet_inpaint() -> ZImageControlNetInpaintPipeline:
    from tiny_families.flux import wake_controlnet

    base = build_tiny_z_image()
    torch.manual_seed(0)
    # The control input is the control image's latents, the mask and the masked image's latents: 16 + 1 + 16.
    controlnet = ZImageControlNetModel(
        control_layers_places=[0, 1],
        control_in_dim=33,
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        dim=32,
        n_refiner_layers=2,
        n_heads=2,
        n_kv_heads=2,
    )
    return ZImageControlNetInpaintPipeline(**base.components, controlnet=wake_controlnet(controlnet))


CASES.append(
    TinyCase(
        name="z-image-controlnet-inpaint",
        pipeline_class="ZImageControlNetInpaintPipeline",
        build=build_tiny_z_image_controlnet_inpaint,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 48}},
        inputs=(("control", (32, 32)), ("image", (32, 32)), ("mask", (32, 32))),
    )
)


def build_tiny_z_image_omni() -> ZImageOmniPipeline:
    base = build_tiny_z_image()
    torch.manual_seed(0)
    # The Omni transformer adds a SigLIP embedder and refiner for condition images.
    transformer = ZImageTransformer2DModel(**TRANSFORMER, siglip_feat_dim=16).eval()
    with torch.no_grad():
        for pad in (transformer.x_pad_token, transformer.cap_pad_token, transformer.siglip_pad_token):
            pad.fill_(1.0)
    torch.manual_seed(0)
    siglip = Siglip2VisionModel(
        Siglip2VisionConfig(
            hidden_size=16,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            patch_size=8,
            num_patches=16,
        )
    ).eval()
    # At most 16 patches of 8x8 pixels: the processor resizes a condition image to 32x32 or below.
    siglip_processor = Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16)
    return ZImageOmniPipeline(
        **{**base.components, "transformer": transformer},
        siglip=siglip,
        siglip_processor=siglip_processor,
    )


CASES.append(
    TinyCase(
        name="z-image-omni",
        pipeline_class="ZImageOmniPipeline",
        build=build_tiny_z_image_omni,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 48}},
        inputs=(("image", (64, 64)),),  # the pipeline refuses condition images under 64 pixels a side
    )
)
