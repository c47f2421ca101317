"""The attention backend context parallel runs on.

diffusers' context parallel replaces the attention op of every attention
processor (``dispatch_attention_fn``) with its templated Ulysses / Ring
attention around a backend's forward op. Ulysses needs only the output, so the
``native`` backend (``scaled_dot_product_attention``) serves it everywhere.
Ring merges partial attentions by their log-sum-exp, and in diffusers 0.42 every
backend that returns one is CUDA-only (``_native_flash`` calls the CUDA flash
kernel). On a host without CUDA, :func:`use_for_context_parallel` therefore
registers aten's CPU flash kernel (``_scaled_dot_product_flash_attention_for_cpu``,
which returns the log-sum-exp) under the ``_native_flash`` name, where the CUDA
kernel could not run anyway, and ring uses it. On CUDA hosts diffusers' own
``_native_flash`` is used unchanged.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_dispatch import (
    AttentionBackendName,
    _AttentionBackendRegistry,
    _templated_context_parallel_attention,
)

from engine_service.parallel.config import ParallelConfig

_CPU_FLASH_REGISTERED = False


def _cpu_flash_forward_op(
    ctx,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    return_lse: bool = False,
    _save_ctx: bool = True,
    _parallel_config=None,
):
    """Attention of (B, S, H, D) tensors on CPU, with its log-sum-exp (B, S, H) when asked."""
    if enable_gqa:
        raise ValueError("grouped-query attention is not supported by the CPU flash backend")
    q, k, v = (x.transpose(1, 2).contiguous() for x in (query, key, value))
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, dropout_p, is_causal, attn_mask=attn_mask, scale=scale
    )
    out = out.transpose(1, 2).contiguous()
    if return_lse:
        return out, lse.transpose(1, 2).contiguous()
    return out


def _cpu_flash_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    return_lse: bool = False,
    _parallel_config=None,
):
    if _parallel_config is None:
        return _cpu_flash_forward_op(
            None, query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, return_lse, _save_ctx=False
        )
    return _templated_context_parallel_attention(
        query,
        key,
        value,
        attn_mask,
        dropout_p,
        is_causal,
        scale,
        enable_gqa,
        return_lse,
        forward_op=_cpu_flash_forward_op,
        backward_op=None,
        _parallel_config=_parallel_config,
    )


def backend_for(parallel: ParallelConfig, device: torch.device) -> str:
    """The attention backend name context parallel runs with on ``device``; registers the CPU kernel when needed."""
    if parallel.ring == 1:
        return AttentionBackendName.NATIVE.value
    if device.type == "cpu" and not torch.cuda.is_available():
        _register_cpu_flash()
    return AttentionBackendName._NATIVE_FLASH.value


def _register_cpu_flash() -> None:
    global _CPU_FLASH_REGISTERED
    if _CPU_FLASH_REGISTERED:
        return
    _AttentionBackendRegistry.register(AttentionBackendName._NATIVE_FLASH, supports_context_parallel=True)(
        _cpu_flash_attention
    )
    _CPU_FLASH_REGISTERED = True
