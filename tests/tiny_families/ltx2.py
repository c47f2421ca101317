"""LTX-2 text- and image-to-video, in-context conditioning on a reference video, HDR video from one and a DFR
pass: a 2-block audio-video transformer, a one-layer Gemma-3 text model, tiny video and audio VAEs and a tiny
vocoder (configurations after diffusers' own LTX-2 tests)."""

import torch
from diffusers import (
    AutoencoderKLLTX2Audio,
    AutoencoderKLLTX2Video,
    FlowMatchEulerDiscreteScheduler,
    LTX2ConditionPipeline,
    LTX2DFRPipeline,
    LTX2HDRPipeline,
    LTX2ImageToVideoPipeline,
    LTX2InContextPipeline,
    LTX2Pipeline,
    LTX2VideoTransformer3DModel,
)
from diffusers.pipelines.ltx2 import LTX2TextConnectors
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
from tiny_tokenizers import small_gemma_tokenizer
from transformers import Gemma3TextConfig, Gemma3TextModel

from tiny_families import TinyCase, scale_weights

#: 9 frames of 32x32: 3 latent frames of 8x8 latent pixels with this VAE (4x temporal and spatial
#: compression; the real one compresses 8x and 32x). STG and modality guidance stay off (the family's
#: call defaults), so each step is one transformer call with CFG batched.
VIDEO = {"width": 32, "height": 32, "frames": 9, "steps": 3, "call_defaults": {"max_sequence_length": 16}}

#: Width of the text model's hidden states, which the connectors project for both tracks.
TEXT_WIDTH = 32


def tiny_ltx2_vae() -> AutoencoderKLLTX2Video:
    """LTX-2's video VAE at 4 latent channels, 4x in space and time (two 8-channel levels), seeded 0."""
    torch.manual_seed(0)
    vae = AutoencoderKLLTX2Video(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        layers_per_block=(1, 1),
        decoder_layers_per_block=(1, 1, 1),
        spatio_temporal_scaling=(True, True),
        decoder_spatio_temporal_scaling=(True, True),
        decoder_inject_noise=(False, False, False),
        downsample_type=("spatial", "spatiotemporal"),
        upsample_residual=(False, False),
        upsample_factor=(1, 1),
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    ).eval()
    vae.use_framewise_encoding = False
    vae.use_framewise_decoding = False
    return vae


def _build(pipeline_class, keyframes: bool = False):
    """The tiny pipeline of ``pipeline_class``; ``keyframes``: an LTX-2.5 transformer with the learned
    embedding of keyframe-slot tokens (``use_keyframes_abs_pos_embedding``)."""
    tokenizer = small_gemma_tokenizer()
    torch.manual_seed(0)
    text_encoder = Gemma3TextModel(
        Gemma3TextConfig(
            vocab_size=len(tokenizer),
            hidden_size=TEXT_WIDTH,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            attn_implementation="eager",
        )
    ).eval()
    torch.manual_seed(0)
    transformer = LTX2VideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        audio_in_channels=4,
        audio_out_channels=4,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=8,
        num_layers=2,
        qk_norm="rms_norm_across_heads",
        caption_channels=TEXT_WIDTH,
        rope_double_precision=False,
        rope_type="split",
        use_keyframes_abs_pos_embedding=keyframes,
    ).eval()
    torch.manual_seed(0)
    connectors = LTX2TextConnectors(
        caption_channels=TEXT_WIDTH,
        text_proj_in_factor=2,  # the text model's hidden states: embeddings + 1 layer
        video_connector_num_attention_heads=4,
        video_connector_attention_head_dim=8,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=None,
        audio_connector_num_attention_heads=4,
        audio_connector_attention_head_dim=8,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None,
        connector_rope_base_seq_len=32,
        rope_theta=10000.0,
        rope_double_precision=False,
        causal_temporal_positioning=False,
        rope_type="split",
    ).eval()
    vae = tiny_ltx2_vae()
    torch.manual_seed(0)
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=4,
        output_channels=2,
        ch_mult=(1,),
        num_res_blocks=1,
        attn_resolutions=None,
        in_channels=2,
        resolution=32,
        latent_channels=2,
        norm_type="pixel",
        causality_axis="height",
        dropout=0.0,
        mid_block_add_attention=False,
        sample_rate=16000,
        mel_hop_length=160,
        is_causal=True,
        mel_bins=8,
    ).eval()
    torch.manual_seed(0)
    vocoder = LTX2Vocoder(
        in_channels=2 * 8,  # the audio VAE's output channels x mel bins
        hidden_channels=32,
        out_channels=2,
        upsample_kernel_sizes=[4, 4],
        upsample_factors=[2, 2],
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3, 5]],
        leaky_relu_negative_slope=0.1,
        output_sampling_rate=16000,
    ).eval()
    return pipeline_class(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        audio_vae=audio_vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        connectors=connectors,
        transformer=transformer,
        vocoder=vocoder,
    )


CASES = [
    TinyCase(name="ltx2", pipeline_class="LTX2Pipeline", build=lambda: _build(LTX2Pipeline), defaults=VIDEO),
    TinyCase(
        name="ltx2-i2v",
        pipeline_class="LTX2ImageToVideoPipeline",
        build=lambda: _build(LTX2ImageToVideoPipeline),
        defaults=VIDEO,
        inputs=(("image", (32, 32)),),
    ),
    TinyCase(
        name="ltx2-condition",
        pipeline_class="LTX2ConditionPipeline",
        build=lambda: _build(LTX2ConditionPipeline),
        defaults=VIDEO,
        inputs=(("image", (32, 32)),),
    ),
]


def build_in_context() -> LTX2InContextPipeline:
    """The in-context pipeline, its video self-attention twice as strong: at init scale the noisy tokens
    barely attend to the reference's (another reference moved a pixel by under 2 uint8 levels; at 2x, by
    about 11)."""
    pipe = _build(LTX2InContextPipeline)
    scale_weights(*(block.attn1 for block in pipe.transformer.transformer_blocks), factor=2.0)
    return pipe


CASES.append(
    TinyCase(
        name="ltx2-in-context",
        pipeline_class="LTX2InContextPipeline",
        build=build_in_context,
        defaults=VIDEO,
        inputs=(("image", (32, 32)),),
        videos=(("reference", (32, 32), 9),),
    )
)


def build_hdr() -> LTX2HDRPipeline:
    """The HDR pipeline, its video self-attention twice as strong (as the in-context one's) so that another
    reference video moves the SDR frames by more than a level or two. Its random VAE decodes about a quarter
    of the linear light above 1.0, which the SDR rendering clips and OpenEXR frames keep."""
    pipe = _build(LTX2HDRPipeline)
    scale_weights(*(block.attn1 for block in pipe.transformer.transformer_blocks), factor=2.0)
    return pipe


CASES.append(
    TinyCase(
        name="ltx2-hdr",
        pipeline_class="LTX2HDRPipeline",
        build=build_hdr,
        defaults=VIDEO,
        videos=(("reference", (32, 32), 9),),
    )
)


#: Three sigmas of the distilled schedule (its first, one from the middle and its last) in place of its
#: eight: the pass runs three steps, which the model reports as its steps.
DFR_SIGMAS = [1.0, 0.725, 0.421875]

#: A DFR model's defaults: 9 frames of 32x32 and its three sigmas (no ``steps``: the schedule sets them).
DFR = {"width": 32, "height": 32, "frames": 9, "call_defaults": {"max_sequence_length": 16, "sigmas": DFR_SIGMAS}}


def build_dfr() -> LTX2DFRPipeline:
    """A DFR pass with an LTX-2.5 transformer: its keyframe-slot embedding marks the slots the pass generates."""
    return _build(LTX2DFRPipeline, keyframes=True)


CASES.append(TinyCase(name="ltx2-dfr", pipeline_class="LTX2DFRPipeline", build=build_dfr, defaults=DFR))
