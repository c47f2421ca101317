"""HunyuanVideo 1.5 text- and image-to-video: 2 blocks, a Qwen2.5-VL text model and a ByT5 (for quoted
text), CFG by a guider; image-to-video adds a SigLIP vision tower."""

import torch
from diffusers import (
    AutoencoderKLHunyuanVideo15,
    ClassifierFreeGuidance,
    FlowMatchEulerDiscreteScheduler,
    HunyuanVideo15ImageToVideoPipeline,
    HunyuanVideo15Pipeline,
    HunyuanVideo15Transformer3DModel,
)
from tiny_tokenizers import byte_level_qwen2_tokenizer
from transformers import (
    ByT5Tokenizer,
    Qwen2_5_VLTextConfig,
    Qwen2_5_VLTextModel,
    SiglipImageProcessor,
    SiglipVisionConfig,
    SiglipVisionModel,
    T5Config,
    T5EncoderModel,
)

from tiny_families import TinyCase

#: The released models' system prompt is about 600 byte-level tokens; the tiny one takes a short one.
SYSTEM_MESSAGE = "Describe the video."
#: Image embeddings of the SigLIP tower (the transformer's image_embed_dim).
IMAGE_EMBED_DIM = 12


def build_hunyuan_video15(pipeline_class=HunyuanVideo15Pipeline):
    """From diffusers' HunyuanVideo 1.5 test configuration, with 2 blocks, a 16x/4x VAE (as released) and
    ``target_size`` 32 (image-to-video buckets of about 32x32 pixels)."""
    image_to_video = pipeline_class is HunyuanVideo15ImageToVideoPipeline
    torch.manual_seed(0)
    transformer = HunyuanVideo15Transformer3DModel(
        in_channels=9,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=2,
        num_refiner_layers=1,
        mlp_ratio=2.0,
        patch_size=1,
        patch_size_t=1,
        text_embed_dim=16,
        text_embed_2_dim=32,
        image_embed_dim=IMAGE_EMBED_DIM,
        rope_axes_dim=(2, 2, 4),
        target_size=32,
        task_type="i2v" if image_to_video else "t2v",
    )
    torch.manual_seed(0)
    vae = AutoencoderKLHunyuanVideo15(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        spatial_compression_ratio=16,
        temporal_compression_ratio=4,
        downsample_match_channel=False,
        upsample_match_channel=False,
    )
    torch.manual_seed(0)
    text_encoder = Qwen2_5_VLTextModel(
        Qwen2_5_VLTextConfig(
            hidden_size=16,
            intermediate_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            rope_theta=1000000.0,
            vocab_size=300,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
    torch.manual_seed(0)
    text_encoder_2 = T5EncoderModel(
        T5Config(
            d_model=32,
            d_kv=4,
            d_ff=16,
            num_layers=2,
            num_heads=2,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=32,
            vocab_size=384,  # ByT5: 3 specials + 256 bytes + 125 extra ids
            feed_forward_proj="gated-gelu",
            dense_act_fn="gelu_new",
            is_encoder_decoder=False,
            use_cache=False,
            tie_word_embeddings=False,
        )
    )
    modules = [transformer, vae, text_encoder, text_encoder_2]
    parts = {}
    if image_to_video:
        torch.manual_seed(0)
        image_encoder = SiglipVisionModel(
            SiglipVisionConfig(
                hidden_size=IMAGE_EMBED_DIM,
                intermediate_size=16,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=32,
                patch_size=8,
            )
        )
        modules.append(image_encoder)
        parts = {
            "image_encoder": image_encoder,
            "feature_extractor": SiglipImageProcessor(size={"height": 32, "width": 32}),
        }
    for module in modules:
        module.eval()
    tokenizer = byte_level_qwen2_tokenizer()
    pipeline = pipeline_class(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=ByT5Tokenizer(),
        guider=ClassifierFreeGuidance(guidance_scale=6.0),
        **parts,
    )
    # The pipeline crops the chat template's tokens before the prompt (108 for the released system
    # prompt and tokenizer) and keeps 1000 tokens after it; here, the short system prompt's and 64.
    pipeline.system_message = SYSTEM_MESSAGE
    messages = [[{"role": "system", "content": SYSTEM_MESSAGE}, {"role": "user", "content": ""}]]
    template = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    after_prompt = tokenizer("<|im_end|>\n<|im_start|>assistant\n").input_ids
    pipeline.prompt_template_encode_start_idx = len(template.input_ids[0]) - len(after_prompt)
    pipeline.tokenizer_max_length = 64
    pipeline.tokenizer_2_max_length = 16
    # Text-to-video feeds the transformer masked zero image embeddings, as many as the released SigLIP
    # makes (729); as many as the tiny one makes (16 patches of 8x8) keep the tiny run cheap.
    pipeline.vision_num_semantic_tokens = 16
    return pipeline


VIDEO = {"width": 32, "height": 32, "frames": 5, "steps": 3}

CASES = [
    TinyCase(
        name="hunyuan-video-1.5",
        pipeline_class="HunyuanVideo15Pipeline",
        build=build_hunyuan_video15,
        defaults=VIDEO,
    ),
    TinyCase(
        name="hunyuan-video-1.5-i2v",
        pipeline_class="HunyuanVideo15ImageToVideoPipeline",
        build=lambda: build_hunyuan_video15(HunyuanVideo15ImageToVideoPipeline),
        defaults=VIDEO,
        # Wider than the video: the engine crops it to the request's size.
        inputs=(("image", (48, 32)),),
    ),
]
