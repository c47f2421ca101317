"""Wan 2.1 text- and image-to-video, VACE, Wan-Animate, and Wan 2.2 with two experts (high-noise and low-noise)."""

import torch
from diffusers import (
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    LucyEditPipeline,
    UniPCMultistepScheduler,
    WanAnimatePipeline,
    WanAnimateTransformer3DModel,
    WanImageToVideoPipeline,
    WanPipeline,
    WanTransformer3DModel,
    WanVACEPipeline,
    WanVACETransformer3DModel,
    WanVideoToVideoPipeline,
)
from tiny_pipelines import TINY_WAN_TRANSFORMER, build_tiny_wan, tiny_clip_vision, tiny_umt5, tiny_wan_vae
from tiny_tokenizers import small_t5_tokenizer

from tiny_families import TinyCase, louder_vae

#: 5 frames of 16x16: 2 latent frames of 2x2 latent pixels.
VIDEO = {"width": 16, "height": 16, "frames": 5, "call_defaults": {"max_sequence_length": 16}}
#: Two experts switch where the timestep falls below 875 of 1000: 3 + 3 of 6 steps with this scheduler.
BOUNDARY_RATIO = 0.875


def _transformer(in_channels: int = 16, image_dim: int | None = None) -> WanTransformer3DModel:
    torch.manual_seed(0)
    return WanTransformer3DModel(
        **TINY_WAN_TRANSFORMER, in_channels=in_channels, num_layers=2, image_dim=image_dim
    ).eval()


def _parts() -> dict:
    vae = tiny_wan_vae()
    return {
        "tokenizer": small_t5_tokenizer(),
        "text_encoder": tiny_umt5(),
        "vae": vae,
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=7.0),
    }


def build_wan_i2v() -> WanImageToVideoPipeline:
    """Wan 2.1 I2V: latents + mask + image latents in (16 + 4 + 16 channels), a CLIP vision image encoder."""
    return WanImageToVideoPipeline(
        **_parts(),
        **tiny_clip_vision(),
        transformer=_transformer(in_channels=36, image_dim=4),
    )


def build_wan22() -> WanPipeline:
    """Wan 2.2 A14B text-to-video: two experts split by the boundary ratio."""
    return WanPipeline(
        **_parts(), transformer=_transformer(), transformer_2=_transformer(), boundary_ratio=BOUNDARY_RATIO
    )


def build_wan22_i2v() -> WanImageToVideoPipeline:
    """Wan 2.2 A14B image-to-video: two experts, no image encoder (the image reaches the model only
    through its latents, so the VAE must carry it)."""
    parts = _parts()
    louder_vae(parts["vae"])
    return WanImageToVideoPipeline(
        **parts,
        transformer=_transformer(in_channels=36),
        transformer_2=_transformer(in_channels=36),
        boundary_ratio=BOUNDARY_RATIO,
    )


def _ti2v_5b_vae() -> AutoencoderKLWan:
    torch.manual_seed(0)
    return AutoencoderKLWan(
        base_dim=3,
        z_dim=48,
        in_channels=12,
        out_channels=12,
        is_residual=True,
        patch_size=2,
        latents_mean=[0.0] * 48,
        latents_std=[1.0] * 48,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    ).eval()


def build_wan22_ti2v_5b() -> WanPipeline:
    """Wan 2.2 TI2V-5B: one transformer, a 16x VAE with 48 latent channels, a timestep per token."""
    vae = _ti2v_5b_vae()
    torch.manual_seed(0)
    transformer = WanTransformer3DModel(
        **{**TINY_WAN_TRANSFORMER, "out_channels": 48}, in_channels=48, num_layers=2
    ).eval()
    return WanPipeline(**{**_parts(), "vae": vae}, transformer=transformer, expand_timesteps=True)


def build_lucy_edit() -> LucyEditPipeline:
    """Lucy Edit: a Wan 2.2 TI2V-5B transformer whose input is the noise and the input video's latents
    (48 + 48 channels), a timestep per token."""
    vae = louder_vae(_ti2v_5b_vae())
    torch.manual_seed(0)
    transformer = WanTransformer3DModel(
        **{**TINY_WAN_TRANSFORMER, "out_channels": 48}, in_channels=96, num_layers=2
    ).eval()
    return LucyEditPipeline(**{**_parts(), "vae": vae}, transformer=transformer, expand_timesteps=True)


def build_wan_vace() -> WanVACEPipeline:
    """Wan 2.1 VACE: 3 blocks, control hints after blocks 0 and 2 (VACE input: 16 + 16 latent channels
    of the control video and 8 x 8 mask channels)."""
    from tiny_families.flux import wake_controlnet

    torch.manual_seed(0)
    transformer = WanVACETransformer3DModel(
        **TINY_WAN_TRANSFORMER, in_channels=16, num_layers=3, vace_layers=[0, 2], vace_in_channels=96
    )
    return WanVACEPipeline(**_parts(), transformer=wake_controlnet(transformer))


def build_wan_v2v() -> WanVideoToVideoPipeline:
    """Wan 2.1 video-to-video: the text-to-video model over the latents of the input video (a louder VAE,
    so that another video reaches the pixels)."""
    parts = _parts()
    louder_vae(parts["vae"])
    return WanVideoToVideoPipeline(**parts, transformer=_transformer())


#: Wan-Animate: 9 frames of 16x16 in segments of 5 frames, each after the first starting on the last frame
#: of the one before: 2 segments (frames 0-4 and 4-8), each a denoising loop of 2 steps.
ANIMATE = {**VIDEO, "frames": 9, "steps": 2, "call_defaults": {**VIDEO["call_defaults"], "segment_frame_length": 5}}


def build_wan_animate() -> WanAnimatePipeline:
    """Wan-Animate: 3 blocks, a face adapter after each (``inject_face_latents_blocks=1``: after the first
    block, a middle one and the last), a motion encoder that reads 16x16 face frames, a CLIP vision image
    encoder; latents + mask + reference latents in (16 + 4 + 16 channels). A louder VAE, so that the pose
    latents and the previous segment's frames reach the pixels. The UniPC scheduler the pipeline is typed for
    (flow prediction), whose multistep state each segment's ``set_timesteps`` resets."""
    parts = _parts()
    louder_vae(parts["vae"])
    parts["scheduler"] = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0
    )
    torch.manual_seed(0)
    transformer = WanAnimateTransformer3DModel(
        **TINY_WAN_TRANSFORMER,
        in_channels=36,
        latent_channels=16,
        num_layers=3,
        image_dim=4,
        motion_encoder_channel_sizes={"16": 4, "8": 4, "4": 4},
        motion_encoder_size=16,
        motion_style_dim=8,
        motion_dim=4,
        motion_encoder_dim=8,
        face_encoder_hidden_dim=8,
        face_encoder_num_heads=2,
        inject_face_latents_blocks=1,
    ).eval()
    return WanAnimatePipeline(**parts, **tiny_clip_vision(), transformer=transformer)


CASES = [
    TinyCase(
        name="wan",
        pipeline_class="WanPipeline",
        build=build_tiny_wan,
        defaults={"width": 16, "height": 16, "frames": 5, "steps": 6, "call_defaults": {"max_sequence_length": 16}},
    ),
    TinyCase(
        name="wan-i2v",
        pipeline_class="WanImageToVideoPipeline",
        build=build_wan_i2v,
        defaults={**VIDEO, "steps": 4},
        inputs=(("image", (16, 16)),),
    ),
    TinyCase(
        name="wan22",
        pipeline_class="WanPipeline",
        build=build_wan22,
        defaults={**VIDEO, "steps": 6},
        experts=2,
    ),
    TinyCase(
        name="wan22-ti2v-5b",
        pipeline_class="WanPipeline",
        build=build_wan22_ti2v_5b,
        # 32x32: 2x2 latent pixels with the 16x VAE.
        defaults={**VIDEO, "width": 32, "height": 32, "steps": 4},
    ),
    TinyCase(
        name="wan22-i2v",
        pipeline_class="WanImageToVideoPipeline",
        build=build_wan22_i2v,
        defaults={**VIDEO, "steps": 6},
        inputs=(("image", (16, 16)),),
        experts=2,
    ),
    TinyCase(
        name="wan-vace",
        pipeline_class="WanVACEPipeline",
        build=build_wan_vace,
        defaults={**VIDEO, "steps": 4},
    ),
    TinyCase(
        name="wan-v2v",
        pipeline_class="WanVideoToVideoPipeline",
        build=build_wan_v2v,
        defaults={**VIDEO, "steps": 4},
        videos=(("video", (16, 16), 5),),
    ),
    TinyCase(
        name="wan-animate",
        pipeline_class="WanAnimatePipeline",
        build=build_wan_animate,
        defaults=ANIMATE,
        inputs=(("image", (16, 16)),),
        videos=(("pose", (16, 16), 9), ("face", (16, 16), 9)),
        loops=2,
    ),
    TinyCase(
        name="lucy-edit",
        pipeline_class="LucyEditPipeline",
        build=build_lucy_edit,
        defaults={**VIDEO, "width": 32, "height": 32, "steps": 3},
        videos=(("video", (32, 32), 5),),
    ),
]
