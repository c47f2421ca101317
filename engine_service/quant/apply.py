"""Applying a model's speed stack, and checking it before anything loads."""

from __future__ import annotations

import logging

import torch

from engine_service.cache.adapter import denoising_components
from engine_service.quant.attention import check_attention_backend, set_attention_backend
from engine_service.quant.compile import CompileStats, check_compile, compile_blocks
from engine_service.quant.config import SpeedConfig, SpeedConfigError
from engine_service.quant.offload import check_offload, enable_offload
from engine_service.quant.quantize import check_scheme, quantize_blocks, quantize_module

logger = logging.getLogger(__name__)


def check_speed(config: SpeedConfig, device: torch.device, dtype: torch.dtype) -> None:
    """Raise SpeedConfigError for a setting this device cannot run, before any model loads."""
    if config.quantize is not None:
        check_scheme(config.quantize, device, dtype)
    elif config.quantize_text_encoder:
        raise SpeedConfigError("--quantize-text-encoder needs --quantize SCHEME")
    if config.compile:
        check_compile(config.compile_backend, config.compile_mode)
    if config.attention_backend is not None:
        check_attention_backend(config.attention_backend, device)
    if config.offload is not None:
        check_offload(config.offload, device, config.compile)


def text_encoders(pipeline) -> list[tuple[str, torch.nn.Module]]:
    """The pipeline's text encoder components (``text_encoder``, ``text_encoder_2``, ...)."""
    return [
        (name, module)
        for name, module in pipeline.components.items()
        if name.startswith("text_encoder") and isinstance(module, torch.nn.Module)
    ]


def apply_speed(
    pipeline, block_lists: tuple[str, ...], config: SpeedConfig, device: torch.device, name: str
) -> CompileStats | None:
    """Attention backend, quantization, compile, offload, in that order, on a loaded pipeline.

    The attention backend, quantization and compile apply to every denoising transformer
    (``cache.denoising_components``: ``transformer``, a second expert ``transformer_2``, a CFG
    branch's ``unconditional_transformer``). With offload the pipeline is still on the CPU and
    offload hooks move it; otherwise it is on ``device`` already. Compile only wraps the blocks:
    the graphs are built by the engine's warm-up. Returns the compiled blocks' stats, one for all
    the transformers (None without compile).
    """
    check_speed(config, device, pipeline.transformer.dtype)
    transformers = denoising_components(pipeline)
    if config.attention_backend is not None:
        for _, transformer in transformers:
            set_attention_backend(transformer, config.attention_backend)
        logger.info("model %r: attention backend %s", name, config.attention_backend)
    if config.quantize is not None:
        scheme = check_scheme(config.quantize, device, pipeline.transformer.dtype)
        for component, transformer in transformers:
            count = quantize_blocks(transformer, block_lists, scheme)
            where = ", ".join(block_lists)
            logger.info("model %r: %s on %d linear layers of %s (%s)", name, config.quantize, count, component, where)
        if config.quantize_text_encoder:
            for component, module in text_encoders(pipeline):
                count = quantize_module(module, scheme)
                logger.info("model %r: %s on %d linear layers of %s", name, config.quantize, count, component)
    compiled = None
    if config.compile:
        compiled = CompileStats()
        for _, transformer in transformers:
            compile_blocks(transformer, config.compile_backend, config.compile_mode, compiled)
        logger.info(
            "model %r: %d blocks of %s compiled with %s",
            name,
            compiled.blocks,
            ", ".join(component for component, _ in transformers),
            config.compile_backend,
        )
    if config.offload is not None:
        enable_offload(pipeline, config.offload, device)
        logger.info("model %r: %s CPU offload to %s", name, config.offload, device)
    return compiled
