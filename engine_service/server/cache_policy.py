"""From a request's ``CachePolicy`` (and the server's default policy) to a cache plan.

Resolution, in order:

1. No ``cache`` in the request, or preset ``""`` with no override: the server's
   default policy.
2. Preset ``"default"`` (or ``""``) with overrides: the server's default policy with
   the request's fields on top; when the server default is ``"none"``, the
   overrides apply to ``"dbcache"``.
3. Any other preset: that preset with the request's fields on top.

Every field is range-checked against the model's block groups and the engine's
``max_steps``; violations name the field (``cache.fn_compute_blocks``). Step counts
above the request's steps (warm-up steps, warm-up interval, cached-step caps) behave
exactly as the request's step count and are clamped to it, so no value a client sends
makes the engine do or hold more than its steps and blocks allow.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from typing import Any

from client_sdk._proto import engine_pb2 as pb
from client_sdk.types import CachePolicy
from engine_service.cache.presets import CACHE_TYPES, CALIBRATORS, NAMED_PRESETS, NO_CACHE, CachePlan, make_plan
from engine_service.errors import excerpt

AddViolation = Callable[[str, str], None]

#: Step-count overrides: a value above the run's steps means the same as the steps (clamped to them).
STEP_COUNTS = ("max_warmup_steps", "warmup_interval", "max_cached_steps", "max_continuous_cached_steps")

#: Proto field -> cache configuration field, for the plain overrides.
OVERRIDES = {
    "fn_compute_blocks": "Fn_compute_blocks",
    "bn_compute_blocks": "Bn_compute_blocks",
    "residual_diff_threshold": "residual_diff_threshold",
    "max_warmup_steps": "max_warmup_steps",
    "warmup_interval": "warmup_interval",
    "max_cached_steps": "max_cached_steps",
    "max_continuous_cached_steps": "max_continuous_cached_steps",
    "enable_separate_cfg": "enable_separate_cfg",
    "max_accumulated_residual_diff_threshold": "max_accumulated_residual_diff_threshold",
    "cfg_diff_compute_separate": "cfg_diff_compute_separate",
    "enable_dynamic_prune_threshold": "enable_dynamic_prune_threshold",
    "magcache_retention_ratio": "magcache_retention_ratio",
}
_OPTIONAL = (*OVERRIDES, "taylorseer_order")
_STRINGS = ("steps_computation_policy", "calibrator", "cache_type")
_REPEATED = ("steps_computation_mask", "non_prune_block_ids", "teacache_coefficients", "magcache_ratios")
#: Fields that belong to one cache type only.
_TYPE_ONLY = {
    "non_prune_block_ids": "dbprune",
    "enable_dynamic_prune_threshold": "dbprune",
    "teacache_coefficients": "teacache",
    "magcache_ratios": "magcache",
    "magcache_retention_ratio": "magcache",
}
PRESETS = ("", NO_CACHE, "default", *NAMED_PRESETS)
#: Fields the proto carries as 32-bit floats.
_FLOAT32 = frozenset(
    name for name, field in pb.CachePolicy.DESCRIPTOR.fields_by_name.items() if field.type == field.TYPE_FLOAT
)


def as_given(value: float) -> float:
    """The shortest decimal that reads back as the same 32-bit float: what the caller wrote.

    A proto ``float`` of 0.2 arrives as 0.20000000298023224; the plan (and its tag) should say 0.2.
    """
    if not math.isfinite(value):
        return value
    single = struct.unpack("f", struct.pack("f", value))[0]
    for digits in range(1, 10):
        candidate = float(f"{single:.{digits}g}")
        if struct.unpack("f", struct.pack("f", candidate))[0] == single:
            return candidate
    return value


def has_overrides(policy: pb.CachePolicy) -> bool:
    return (
        any(policy.HasField(name) for name in _OPTIONAL)
        or any(getattr(policy, name) for name in _STRINGS)
        or any(len(getattr(policy, name)) for name in _REPEATED)
    )


def _merge(base: pb.CachePolicy, top: pb.CachePolicy) -> pb.CachePolicy:
    merged = pb.CachePolicy()
    merged.CopyFrom(base)
    for name in _OPTIONAL:
        if top.HasField(name):
            setattr(merged, name, getattr(top, name))
    for name in _STRINGS:
        if getattr(top, name):
            setattr(merged, name, getattr(top, name))
    for name in _REPEATED:
        if len(getattr(top, name)):
            field = getattr(merged, name)
            del field[:]
            field.extend(getattr(top, name))
    return merged


def effective_policy(request: pb.GenerateRequest, server_default: pb.CachePolicy) -> pb.CachePolicy:
    """The policy a request runs with, before range checks."""
    if not request.HasField("cache"):
        return server_default
    policy = request.cache
    if policy.preset not in ("", "default"):
        return policy
    if not has_overrides(policy):
        return server_default
    base = pb.CachePolicy()
    base.CopyFrom(server_default)
    if base.preset in ("", NO_CACHE):
        base.preset = "dbcache"
    return _merge(base, policy)


def plan_for(
    policy: pb.CachePolicy,
    steps: int,
    group_sizes: tuple[int, ...],
    add: AddViolation,
    max_steps: int,
    calibration: Mapping[str, Any] | None = None,
) -> CachePlan | None:
    """The cache plan of ``policy`` for a run of ``steps`` steps; ``None`` = no caching.

    Step-count fields must lie within ``max_steps`` (the engine's limit) and are clamped
    to ``steps``. ``calibration`` is the model's (TeaCache coefficients, MagCache curve).
    Reports every bad field through ``add``; returns ``None`` when any was reported.
    """
    before = _Counter(add)
    preset = policy.preset
    if preset not in PRESETS:
        before.add("cache.preset", f"must be one of {', '.join(repr(p) for p in PRESETS)}; got {excerpt(preset)}")
        return None
    if preset in ("", NO_CACHE):
        if has_overrides(policy):
            before.add("cache.preset", 'is "none"; a policy that disables caching takes no other field')
        return None
    if preset == "default":
        before.add("cache.preset", '"default" cannot be the server\'s own default policy')
        return None
    _check_fields(policy, steps, min(group_sizes), max_steps, before)
    if before.count:
        return None
    calibrator = policy.calibrator or ("taylorseer" if policy.taylorseer_order > 0 else "none")
    overrides = {
        OVERRIDES[name]: as_given(getattr(policy, name)) if name in _FLOAT32 else getattr(policy, name)
        for name in OVERRIDES
        if policy.HasField(name)
    }
    for name in STEP_COUNTS:
        if name in overrides and overrides[name] > steps:
            overrides[name] = steps
    if policy.steps_computation_mask:
        overrides["steps_computation_mask"] = list(policy.steps_computation_mask)
    if policy.steps_computation_policy:
        overrides["steps_computation_policy"] = policy.steps_computation_policy
    for name in ("non_prune_block_ids", "teacache_coefficients", "magcache_ratios"):
        if getattr(policy, name):
            values = list(getattr(policy, name))
            overrides[name] = [as_given(v) for v in values] if name in _FLOAT32 else values
    if policy.cache_type != "dbprune":
        overrides.pop("enable_dynamic_prune_threshold", None)
    try:
        return make_plan(
            preset,
            steps,
            overrides,
            cache_type=policy.cache_type or "dbcache",
            calibrator=calibrator,
            taylorseer_order=policy.taylorseer_order or 1,
            calibration=dict(calibration or {}),
        )
    except ValueError as err:  # a preset's step mask does not cover this step count; no MagCache curve
        field = "cache.magcache_ratios" if "MagCache" in str(err) else "cache.preset"
        before.add(field, str(err))
        return None


class _Counter:
    def __init__(self, add: AddViolation):
        self._add = add
        self.count = 0

    def add(self, field: str, description: str) -> None:
        self.count += 1
        self._add(field, description)


def _check_fields(policy: pb.CachePolicy, steps: int, blocks: int, max_steps: int, v: _Counter) -> None:
    def check_int(name: str, low: int, high: int | None, what: str) -> None:
        if policy.HasField(name):
            value = getattr(policy, name)
            if value < low or (high is not None and value > high):
                bound = f"between {low} and {high}" if high is not None else f">= {low}"
                v.add(f"cache.{name}", f"must be {bound} ({what}); got {value}")

    check_int("fn_compute_blocks", 1, blocks, f"the model's block groups have {blocks} blocks at least")
    check_int("bn_compute_blocks", 0, blocks - 1, "trailing blocks that always run")
    fn = policy.fn_compute_blocks if policy.HasField("fn_compute_blocks") else 1
    bn = policy.bn_compute_blocks if policy.HasField("bn_compute_blocks") else 0
    if 1 <= fn <= blocks and 0 <= bn and fn + bn >= blocks:
        v.add("cache.bn_compute_blocks", f"Fn {fn} + Bn {bn} leave none of the {blocks} blocks to cache")
    for name in ("residual_diff_threshold", "max_accumulated_residual_diff_threshold"):
        if policy.HasField(name) and not math.isfinite(getattr(policy, name)):
            v.add(f"cache.{name}", "must be a finite number")
    check_int("max_warmup_steps", 0, max_steps, "steps that always compute")
    check_int("warmup_interval", 1, max_steps, "spacing of warmup steps")
    check_int("max_cached_steps", -1, max_steps, "-1 = no cap")
    check_int("max_continuous_cached_steps", -1, max_steps, "-1 = no cap")
    check_int("taylorseer_order", 0, 4, "0 = off")
    mask = policy.steps_computation_mask
    if mask and len(mask) != steps:
        v.add("cache.steps_computation_mask", f"has {len(mask)} entries; the request runs {steps} steps")
    elif any(m not in (0, 1) for m in mask):
        v.add("cache.steps_computation_mask", "may only hold 0 (may reuse) and 1 (must compute)")
    if policy.steps_computation_policy not in ("", "static", "dynamic"):
        v.add(
            "cache.steps_computation_policy",
            f'must be "static" or "dynamic"; got {excerpt(policy.steps_computation_policy)}',
        )
    if policy.calibrator not in ("", *CALIBRATORS):
        v.add("cache.calibrator", f"must be one of {', '.join(CALIBRATORS)}; got {excerpt(policy.calibrator)}")
    elif policy.calibrator in ("foca", "none") and policy.taylorseer_order > 0:
        v.add("cache.taylorseer_order", f'is set, but the calibrator is "{policy.calibrator}"')
    if policy.cache_type not in ("", *CACHE_TYPES):
        v.add("cache.cache_type", f"must be one of {', '.join(CACHE_TYPES)}; got {excerpt(policy.cache_type)}")
    kind = policy.cache_type or "dbcache"
    for name, owner in _TYPE_ONLY.items():
        present = policy.HasField(name) if name in _OPTIONAL else bool(len(getattr(policy, name)))
        if present and kind != owner:
            v.add(f"cache.{name}", f'applies to cache_type "{owner}" only')
    ids = policy.non_prune_block_ids
    bad_ids = [i for i in ids if not 0 <= i < blocks]
    if kind == "dbprune" and len(ids) > blocks:
        v.add("cache.non_prune_block_ids", f"has {len(ids)} ids; the model's block groups have {blocks} blocks")
    elif kind == "dbprune" and bad_ids:
        shown = ", ".join(map(str, bad_ids[:8])) + (", ..." if len(bad_ids) > 8 else "")
        v.add("cache.non_prune_block_ids", f"ids must be between 0 and {blocks - 1}; got {shown}")
    if any(not math.isfinite(c) for c in policy.teacache_coefficients):
        v.add("cache.teacache_coefficients", "must be finite numbers")
    if any(not (math.isfinite(r) and r > 0) for r in policy.magcache_ratios):
        v.add("cache.magcache_ratios", "must be finite numbers > 0")
    if policy.HasField("magcache_retention_ratio") and not 0.0 <= policy.magcache_retention_ratio <= 1.0:
        v.add("cache.magcache_retention_ratio", f"must be between 0 and 1; got {policy.magcache_retention_ratio}")


def parse_policy(text: str) -> pb.CachePolicy:
    """A policy from ``PRESET`` or ``PRESET:field=value,...`` (the serve flag's syntax).

    Raises ``ValueError`` for text it cannot read or a preset that cannot be a server default.
    """
    policy = CachePolicy.parse(text).to_proto()
    if policy.preset not in PRESETS or policy.preset == "default":
        choices = ", ".join(p for p in PRESETS if p not in ("", "default"))
        raise ValueError(f"the default cache policy's preset must be one of {choices}; got {excerpt(policy.preset)}")
    return policy


def check_default_policy(policy: pb.CachePolicy, models: dict, max_steps: int) -> None:
    """Check the server's default policy against every model at its default step count.

    Raises ``ValueError`` naming every bad field and the model it fails for, so a bad
    ``--cache-policy`` stops the server at start-up instead of failing every request.
    """
    problems: list[str] = []
    for name, model in models.items():
        plan_for(
            policy,
            model.default_steps,
            model.cache_group_sizes,
            lambda field, why, name=name: problems.append(f"{field.removeprefix('cache.')} {why} (model {name!r})"),
            max_steps,
            model.cache_calibration,
        )
    if problems:
        raise ValueError("the default cache policy: " + "; ".join(problems))


__all__ = ["check_default_policy", "effective_policy", "has_overrides", "parse_policy", "plan_for"]
