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
#: Backends that support context parallel but cannot return the log-sum-exp Ring needs.
_NO_LOG_SUM_EXP = frozenset({AttentionBackendName.NATIVE.value})


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


class AttentionBackendError(ValueError):
    """An ``--attention-backend`` that context parallel cannot run on."""


def backend_for(parallel: ParallelConfig, device: torch.device, requested: str | None = None) -> str:
    """The attention backend name context parallel runs with on ``device``; registers the CPU kernel when needed.

    ``requested`` (``--attention-backend``) is kept when diffusers marks it as supporting context
    parallel and, for Ring, when it returns the log-sum-exp; AttentionBackendError otherwise."""
    if requested is not None:
        if requested not in _AttentionBackendRegistry._supports_context_parallel:
            raise AttentionBackendError(
                f"--attention-backend {requested} with --parallel {parallel}: diffusers' {requested} backend "
                "has no context-parallel support"
            )
        if parallel.ring > 1 and requested in _NO_LOG_SUM_EXP:
            raise AttentionBackendError(
                f"--attention-backend {requested} with --parallel {parallel}: Ring attention merges partial "
                f"attentions by their log-sum-exp, which the {requested} backend does not return"
            )
        return requested
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


# -- context parallel attention under torch.compile ---------------------------------------------
#
# diffusers' templated Ulysses "anything" attention exchanges sequence sizes and splits by them
# (host-side values), which dynamo cannot trace in a full graph. For a compiled model the context
# parallel attention therefore runs as one opaque custom op: the compiled block graphs call it like
# any other kernel, with a fake implementation giving its output shape, and it runs diffusers'
# attention (all-to-alls or ring exchange included) eagerly inside.

#: Context-parallel configs the custom op can reach, by the key stored on the config.
_CONFIGS: dict[int, object] = {}
#: diffusers' own function of each backend made opaque.
_ORIGINAL: dict[str, object] = {}
_KEY = "_ditserve_opaque_key"


@torch.library.custom_op("ditserve::context_parallel_attention", mutates_args=())
def _context_parallel_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None,
    dropout_p: float,
    is_causal: bool,
    scale: float | None,
    enable_gqa: bool,
    backend: str,
    config: int,
) -> torch.Tensor:
    """(B, S_local, H, D) query, key, value -> (B, S_local, H, D_v): the backend's context parallel attention."""
    out = _ORIGINAL[backend](
        query=query,
        key=key,
        value=value,
        attn_mask=attn_mask,
        dropout_p=dropout_p,
        is_causal=is_causal,
        scale=scale,
        enable_gqa=enable_gqa,
        return_lse=False,
        _parallel_config=_CONFIGS[config],
    )
    return out.clone() if out.data_ptr() in (query.data_ptr(), key.data_ptr(), value.data_ptr()) else out


@_context_parallel_attention.register_fake
def _context_parallel_attention_shape(
    query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, backend, config
):
    return query.new_empty((*query.shape[:-1], value.shape[-1]))


def make_opaque(backend: str, parallel_config) -> None:
    """Route ``backend``'s context parallel calls with ``parallel_config`` through the custom op above."""
    key = len(_CONFIGS)
    _CONFIGS[key] = parallel_config
    setattr(parallel_config, _KEY, key)
    if backend in _ORIGINAL:
        return
    name = AttentionBackendName(backend)
    original = _AttentionBackendRegistry._backends[name]
    _ORIGINAL[backend] = original

    def attention(
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
        opaque_key = getattr(_parallel_config, _KEY, None)
        if opaque_key is None or return_lse:
            return original(
                query=query,
                key=key,
                value=value,
                attn_mask=attn_mask,
                dropout_p=dropout_p,
                is_causal=is_causal,
                scale=scale,
                enable_gqa=enable_gqa,
                return_lse=return_lse,
                _parallel_config=_parallel_config,
            )
        return _context_parallel_attention(
            query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, backend, opaque_key
        )

    _AttentionBackendRegistry.register(
        name,
        constraints=_AttentionBackendRegistry._constraints.get(name),
        supports_context_parallel=backend in _AttentionBackendRegistry._supports_context_parallel,
    )(attention)
