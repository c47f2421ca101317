"""FLUX.2 dev and Klein (text-to-image, inpainting, KV): 2 double-stream + 2 single-stream blocks, a 1-layer
Mistral 3 (dev) or 2-layer Qwen3 (Klein) text encoder, an 8x VAE with 4 latent channels."""

import torch
from diffusers import (
    AutoencoderKLFlux2,
    FlowMatchEulerDiscreteScheduler,
    Flux2KleinInpaintPipeline,
    Flux2KleinKVPipeline,
    Flux2KleinPipeline,
    Flux2Pipeline,
    Flux2Transformer2DModel,
)
from tiny_tokenizers import byte_level_qwen2_tokenizer, qwen_vl_tokenizer
from transformers import Mistral3Config, Mistral3ForConditionalGeneration, Qwen3Config, Qwen3ForCausalLM

from tiny_families import TinyCase, scale_weights

#: Renders FLUX.2 dev's conversations (system and user turns whose content is a list of text parts).
PARTS_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}{{ part['text'] }}{% endfor %}<|im_end|>\n{% endfor %}"
)


def _transformer_and_vae(seed: int, guidance_embeds: bool) -> tuple:
    torch.manual_seed(seed)
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels x 2x2 packing
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=16,  # one text-encoder layer of width 16
        timestep_guidance_channels=256,
        axes_dims_rope=[4, 4, 4, 4],
        guidance_embeds=guidance_embeds,
    ).eval()
    torch.manual_seed(seed)
    vae = AutoencoderKLFlux2(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        use_quant_conv=False,
        use_post_quant_conv=False,
    ).eval()
    return transformer, vae


def build_tiny_flux2(seed: int = 0) -> Flux2Pipeline:
    tokenizer = qwen_vl_tokenizer()
    tokenizer.chat_template = PARTS_TEMPLATE
    transformer, vae = _transformer_and_vae(seed, guidance_embeds=True)
    torch.manual_seed(seed)
    text_encoder = Mistral3ForConditionalGeneration(
        Mistral3Config(
            text_config={
                "model_type": "mistral",
                "vocab_size": len(tokenizer),
                "hidden_size": 16,
                "intermediate_size": 37,
                "max_position_embeddings": 512,
                "num_attention_heads": 4,
                "num_hidden_layers": 1,
                "num_key_value_heads": 2,
                "rms_norm_eps": 1e-05,
                "rope_theta": 1000000000.0,
                "sliding_window": None,
                "bos_token_id": 0,
                "eos_token_id": 0,
                "pad_token_id": 0,
            },
            vision_config={
                "model_type": "pixtral",
                "hidden_size": 16,
                "num_hidden_layers": 1,
                "num_attention_heads": 4,
                "intermediate_size": 37,
                "image_size": 30,
                "patch_size": 6,
                "num_channels": 3,
            },
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=0,
            image_seq_length=4,
            vision_feature_layer=-1,
            image_token_index=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        )
    ).eval()
    return Flux2Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        vae=vae,
    )


def _klein_components(seed: int = 0) -> dict:
    tokenizer = byte_level_qwen2_tokenizer()
    transformer, vae = _transformer_and_vae(seed, guidance_embeds=False)
    torch.manual_seed(seed)
    text_encoder = Qwen3ForCausalLM(
        Qwen3Config(
            intermediate_size=16,
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=512,
        )
    ).eval()
    return {
        "scheduler": FlowMatchEulerDiscreteScheduler(),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "transformer": transformer,
        "vae": vae,
    }


def build_tiny_flux2_klein() -> Flux2KleinPipeline:
    return Flux2KleinPipeline(**_klein_components())


def _louder(components: dict) -> dict:
    transformer = components["transformer"]
    scale_weights(transformer.transformer_blocks, transformer.single_transformer_blocks, factor=3.0)
    return components


def build_tiny_flux2_klein_inpaint() -> Flux2KleinInpaintPipeline:
    return Flux2KleinInpaintPipeline(**_louder(_klein_components()), is_distilled=False)


def build_tiny_flux2_klein_kv() -> Flux2KleinKVPipeline:
    return Flux2KleinKVPipeline(**_louder(_klein_components()))


#: The tiny encoders have one or two layers: take the first layer's hidden states.
CALL = {"max_sequence_length": 16, "text_encoder_out_layers": (1,)}
#: Klein's chat template puts 17 byte tokens ("<|im_start|>user\n") before the prompt: room for the prompt.
KLEIN_CALL = {**CALL, "max_sequence_length": 48}
CASES = [
    TinyCase(
        name="flux2",
        pipeline_class="Flux2Pipeline",
        build=build_tiny_flux2,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": CALL},
    ),
    TinyCase(
        name="flux2-klein",
        pipeline_class="Flux2KleinPipeline",
        build=build_tiny_flux2_klein,
        # Guidance above 1 on a base (not distilled) Klein model: CFG as a second transformer call.
        defaults={"width": 32, "height": 32, "steps": 4, "guidance_scale": 4.0, "call_defaults": KLEIN_CALL},
        inputs=(("image", (64, 64)),),  # reference images must be 64x64 at least
    ),
    # 4 steps at the default strength 0.8: the pipeline runs the last 3, with CFG (a base model).
    TinyCase(
        name="flux2-klein-inpaint",
        pipeline_class="Flux2KleinInpaintPipeline",
        build=build_tiny_flux2_klein_inpaint,
        defaults={"width": 32, "height": 32, "steps": 4, "guidance_scale": 4.0, "call_defaults": KLEIN_CALL},
        # Image and mask are resized to the request's 32x32; the reference is encoded at its own size.
        inputs=(("image", (64, 64)), ("mask", (64, 64)), ("reference", (64, 64))),
    ),
    TinyCase(
        name="flux2-klein-kv",
        pipeline_class="Flux2KleinKVPipeline",
        build=build_tiny_flux2_klein_kv,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": KLEIN_CALL},
        inputs=(("image", (64, 64)),),
        reshaped_steps=1,  # step 1, the first without the reference tokens
    ),
]
