"""HunyuanVideo text-to-video, SkyReels-V1, HunyuanVideo-I2V and FramePack image-to-video: 2 dual-stream +
2 single-stream blocks, a Llama (a Llava for HunyuanVideo-I2V) and a CLIP text encoder; FramePack adds a
SigLIP vision tower."""

import torch
from diffusers import (
    AutoencoderKLHunyuanVideo,
    FlowMatchEulerDiscreteScheduler,
    HunyuanSkyreelsImageToVideoPipeline,
    HunyuanVideoFramepackPipeline,
    HunyuanVideoFramepackTransformer3DModel,
    HunyuanVideoImageToVideoPipeline,
    HunyuanVideoPipeline,
    HunyuanVideoTransformer3DModel,
)
from tiny_tokenizers import _byte_alphabet, byte_level_clip_tokenizer
from transformers import (
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPVisionConfig,
    LlamaConfig,
    LlamaModel,
    LlamaTokenizer,
    LlavaConfig,
    LlavaForConditionalGeneration,
    SiglipImageProcessor,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from tiny_families import TinyCase, louder_vae


def byte_level_llama_tokenizer() -> LlamaTokenizer:
    """A Llama tokenizer with one token per byte and no merges (4 specials + 256 ids)."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3}
    for char in _byte_alphabet():
        vocab[char] = len(vocab)
    # Starts every text with <s>, as Llama's own does: an empty negative prompt still has a token to attend to.
    return LlamaTokenizer(vocab=vocab, merges=[], pad_token="<pad>", add_bos_token=True)


LLAMA = {
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 3,
    "hidden_size": 16,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "vocab_size": 1000,
    "hidden_act": "gelu",
}
#: The Llava's CLIP vision tower sees 32x32 pictures in 8x8 patches: 16 image embeddings.
LLAVA_IMAGE_SIZE, LLAVA_IMAGE_TOKENS = 32, 16


def tiny_hunyuan_video_vae() -> AutoencoderKLHunyuanVideo:
    """HunyuanVideo's VAE (8x spatial, 4x temporal, 4 latent channels) with 8-channel levels, with the
    caller's random weights, in eval mode."""
    return AutoencoderKLHunyuanVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4,
        up_block_types=("HunyuanVideoUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        act_fn="silu",
        norm_num_groups=4,
        scaling_factor=0.476986,
        spatial_compression_ratio=8,
        temporal_compression_ratio=4,
        mid_block_add_attention=True,
    ).eval()


def build_hunyuan_video(
    pipeline_class=HunyuanVideoPipeline, in_channels: int = 4, **transformer_config
) -> HunyuanVideoPipeline | HunyuanSkyreelsImageToVideoPipeline | HunyuanVideoImageToVideoPipeline:
    """``in_channels`` 8 for SkyReels-V1: the image latents beside the noise; HunyuanVideo-I2V gets a Llava."""
    torch.manual_seed(0)
    transformer = HunyuanVideoTransformer3DModel(
        in_channels=in_channels,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=10,
        num_layers=2,
        num_single_layers=2,
        num_refiner_layers=1,
        patch_size=1,
        patch_size_t=1,
        text_embed_dim=16,
        pooled_projection_dim=8,
        rope_axes_dim=(2, 4, 4),
        **{"guidance_embeds": True, **transformer_config},
    ).eval()
    torch.manual_seed(0)
    vae = tiny_hunyuan_video_vae()
    torch.manual_seed(0)
    text_encoder = LlamaModel(LlamaConfig(**LLAMA)).eval()
    torch.manual_seed(0)
    text_encoder_2 = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=8,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=1000,
            hidden_act="gelu",
            projection_dim=32,
        )
    ).eval()
    parts = {}
    if pipeline_class is HunyuanVideoImageToVideoPipeline:
        torch.manual_seed(0)
        vision = CLIPVisionConfig(
            hidden_size=8,
            intermediate_size=37,
            projection_dim=32,
            num_attention_heads=4,
            num_hidden_layers=2,
            image_size=LLAVA_IMAGE_SIZE,
            patch_size=8,
        )
        llava = LlavaConfig(
            vision_config=vision, text_config=LlamaConfig(**LLAMA), image_token_index=999, pad_token_id=3
        )
        text_encoder = LlavaForConditionalGeneration(llava).eval()
        parts["image_processor"] = CLIPImageProcessor(crop_size=LLAVA_IMAGE_SIZE, size=LLAVA_IMAGE_SIZE)
    return pipeline_class(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=text_encoder,
        tokenizer=byte_level_llama_tokenizer(),
        text_encoder_2=text_encoder_2,
        tokenizer_2=byte_level_clip_tokenizer(),
        **parts,
    )


VIDEO = {
    "width": 16,
    "height": 16,
    "frames": 5,
    "steps": 4,
    # The default template is a long Llama chat prompt; a tiny model takes the bare prompt.
    "call_defaults": {"max_sequence_length": 16, "prompt_template": {"template": "{}", "crop_start": 0}},
}

#: HunyuanVideo-I2V: the pipeline writes the image embeddings over the positions its template gives
#: them (here the second half of the 32 prompt tokens, after the bare prompt).
IMAGE_TO_VIDEO = {
    **VIDEO,
    "call_defaults": {
        "max_sequence_length": 32,
        "prompt_template": {
            "template": "{}",
            "crop_start": 0,
            "image_emb_len": LLAVA_IMAGE_TOKENS,
            "image_emb_start": 32 - LLAVA_IMAGE_TOKENS,
            "image_emb_end": 32,
        },
    },
}


def build_framepack() -> HunyuanVideoFramepackPipeline:
    """FramePack: the HunyuanVideo text encoders, a transformer that also embeds the history latents (1x,
    2x and 4x patches) and the SigLIP features of the input image (width 8, 32x32 pictures)."""
    base = build_hunyuan_video()
    torch.manual_seed(0)
    transformer = HunyuanVideoFramepackTransformer3DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=10,
        num_layers=2,
        num_single_layers=2,
        num_refiner_layers=1,
        patch_size=2,
        patch_size_t=1,
        text_embed_dim=16,
        pooled_projection_dim=8,
        rope_axes_dim=(2, 4, 4),
        has_image_proj=True,
        image_proj_dim=8,
        has_clean_x_embedder=True,
    ).eval()
    torch.manual_seed(0)
    vision = SiglipVisionConfig(
        hidden_size=8, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32, patch_size=8
    )
    return HunyuanVideoFramepackPipeline(
        transformer=transformer,
        vae=louder_vae(base.vae),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        text_encoder_2=base.text_encoder_2,
        tokenizer_2=base.tokenizer_2,
        image_encoder=SiglipVisionModel(vision).eval(),
        feature_extractor=SiglipImageProcessor(size={"height": 32, "width": 32}),
    )


#: Two sections of 2 latent frames: 2 x 8 frames after the image's, 17 in all.
FRAMEPACK = {**VIDEO, "frames": 17, "steps": 2, "call_defaults": {**VIDEO["call_defaults"], "latent_window_size": 2}}

CASES = [
    TinyCase(name="hunyuan-video", pipeline_class="HunyuanVideoPipeline", build=build_hunyuan_video, defaults=VIDEO),
    TinyCase(
        name="hunyuan-skyreels-i2v",
        pipeline_class="HunyuanSkyreelsImageToVideoPipeline",
        build=lambda: build_hunyuan_video(HunyuanSkyreelsImageToVideoPipeline, in_channels=8),
        defaults=VIDEO,
        inputs=(("image", (16, 16)),),
    ),
    TinyCase(
        name="hunyuan-video-i2v",
        pipeline_class="HunyuanVideoImageToVideoPipeline",
        # The image latents and a mask beside the noise (4 + 4 + 1 channels); no guidance embedding.
        build=lambda: build_hunyuan_video(
            HunyuanVideoImageToVideoPipeline, in_channels=9, guidance_embeds=False, image_condition_type="latent_concat"
        ),
        defaults=IMAGE_TO_VIDEO,
        inputs=(("image", (16, 16)),),
    ),
    TinyCase(
        name="hunyuan-video-framepack",
        pipeline_class="HunyuanVideoFramepackPipeline",
        build=build_framepack,
        defaults=FRAMEPACK,
        inputs=(("image", (16, 16)), ("last_image", (16, 16))),
        loops=2,
    ),
]
