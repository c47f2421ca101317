"""Per-request LoRA adapters: loaded once at start-up with diffusers' LoRA loaders (peft), chosen per call.

Every adapter of a model is loaded at start-up with the pipeline's own
``load_lora_weights(path, adapter_name=NAME)`` (a ``pytorch_lora_weights.safetensors``
as ``save_lora_weights`` writes it, or a kohya-style file diffusers converts) and
checked against the model: an adapter whose layers the model does not have, or
whose shapes do not fit, stops start-up naming its file.

Before each pipeline call the worker activates the call's adapter set (the batcher
only groups calls with the same set and scales):

* eager models: ``set_adapters(names, adapter_weights=scales)``; the empty set is
  ``disable_lora()``, under which every adapted layer computes its base layer
  alone, so the outputs are bit-identical to a pipeline with no adapter loaded.
* compiled models (``--compile``): switching the *active* adapters or their scales
  would change what the compiled blocks trace, so the transformer instead carries a
  fixed number of adapter **slots** (``max_per_request``), all always active, each
  padded to the largest rank (diffusers' ``enable_lora_hotswap(target_rank=...)``).
  A call writes its adapters into the slots in place with diffusers' LoRA hot-swap
  (``load_lora_adapter(..., hotswap=True)``); unused slots hold zeros. Each adapter is
  kept as its per-layer effective weights (``lora_B`` times the adapter's own
  ``alpha / r``, padded), so any two adapters swap into the same slot whatever their
  ranks and alphas, and the request's scale multiplies ``lora_B`` as it is written.
  The empty set is ``disable_lora()``, a second graph built at warm-up. After
  warm-up, switching between adapters, scales and none compiles nothing.

The cache's state belongs to one request (reset before every call), so a change of
adapters between requests never reuses a residual computed under other weights.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib
import re
import warnings
from collections.abc import Mapping, Sequence

import torch

logger = logging.getLogger(__name__)

#: Default of ``--max-loras-per-request``: adapters one request may combine.
DEFAULT_MAX_LORAS_PER_REQUEST = 4
#: Largest |scale| a request may give an adapter (beyond it adapters only break images).
MAX_LORA_SCALE = 8.0
#: Adapter names: what a request may spell.
LORA_NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: ``--quantize`` schemes whose quantized linear layers can carry a LoRA, with what was checked.
#: An adapter is added beside the quantized layer (peft keeps it in the model's dtype), never merged into it.
LORA_QUANT_SCHEMES: Mapping[str, str] = {
    "int8-weight-only": "tested on CPU: adapters apply, the empty set is the quantized base exactly",
    "int8-dynamic": "tested on CPU: adapters apply, the empty set is the quantized base exactly",
}
#: Names of the adapters inside the pipeline (peft keeps them as module keys, so a user's name such as
#: ``half`` or ``a.b`` could clash with a module attribute or be refused): the prefix and a number.
ADAPTER_PREFIX = "ditserve_lora_"
#: Names of the transformer's adapter slots with ``--compile``.
SLOT_PREFIX = "ditserve_slot_"

#: A call's adapters: (name, scale) pairs sorted by name; empty = the base model.
AdapterSet = tuple[tuple[str, float], ...]


class LoraLoadError(RuntimeError):
    """An adapter could not be loaded for its model (missing file, foreign layers, wrong shapes). Fatal at start-up."""


@dataclasses.dataclass(frozen=True)
class LoraSource:
    """An adapter to load: its name, a local file or directory, and its model (None = the default model)."""

    name: str
    path: str
    model: str | None = None


@dataclasses.dataclass(frozen=True)
class AdapterInfo:
    """What ListModels reports about one loaded adapter."""

    name: str
    source: str
    """The file or directory it was loaded from."""
    adapter_name: str
    """Its name inside the pipeline (peft's adapter name)."""
    rank: int
    """Its largest rank over its layers."""
    layers: int
    """How many layers of the model it adapts."""
    components: tuple[str, ...]
    """The pipeline components it adapts (``transformer``, ``text_encoder``, ...)."""


def parse_lora_arg(value: str, model_names: Sequence[str]) -> LoraSource:
    """Parse ``NAME=PATH[:MODEL]`` from ``--lora``; MODEL must be one of ``model_names``.

    A path may itself hold a colon: the text after the last one is a model only when it
    names a served model."""
    name, sep, rest = value.partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"--lora expects NAME=PATH[:MODEL], got {value!r}")
    if not LORA_NAME_PATTERN.fullmatch(name):
        raise ValueError(f"--lora {value}: the name must be 1 to 64 characters of A-Z a-z 0-9 . _ -")
    path, colon, model = rest.rpartition(":")
    if colon and path and model in model_names:
        return LoraSource(name=name, path=path, model=model)
    return LoraSource(name=name, path=rest)


def check_quantize(scheme: str | None, model: str) -> None:
    """LoraLoadError when ``model`` is quantized with a scheme no adapter can sit on."""
    if scheme is None or scheme in LORA_QUANT_SCHEMES:
        return
    carried = ", ".join(LORA_QUANT_SCHEMES)
    raise LoraLoadError(
        f"model {model!r}: --quantize {scheme} cannot carry LoRA adapters (its quantized layers are untested "
        f"with peft's adapter layers); schemes that can: {carried}, or no --quantize"
    )


class ModelLoras:
    """The adapters of one model and which set its pipeline runs with. Used from the worker thread only."""

    def __init__(self, adapters: dict[str, AdapterInfo], max_per_request: int, hotswap: dict[str, dict] | None):
        self.adapters = adapters
        self.max_per_request = max_per_request
        self._hotswap = hotswap
        """With --compile: each adapter's effective slot weights (state-dict keys of the transformer)."""
        self._active: AdapterSet | None = ()
        """The set the pipeline runs with now; None = unknown (an activation failed half-way)."""
        self._slots: list[tuple[str, float] | None] = [None] * max_per_request

    @property
    def hotswap(self) -> bool:
        """True when adapters swap into compiled slots instead of being switched with ``set_adapters``."""
        return self._hotswap is not None

    def warmup_set(self) -> AdapterSet:
        """An adapter set that exercises every slot, for warm-up (graphs are built for it)."""
        name = next(iter(self.adapters))
        return ((name, 1.0),)

    def activate(self, pipeline, adapters: AdapterSet) -> None:
        """Make ``pipeline`` run with ``adapters`` (validated names, at most ``max_per_request``)."""
        if adapters == self._active:
            return
        was, self._active = self._active, None
        if not adapters:
            pipeline.disable_lora()
        else:
            if not was:  # disabled (the base model) or unknown
                pipeline.enable_lora()
            if self._hotswap is None:
                names = [self.adapters[name].adapter_name for name, _ in adapters]
                pipeline.set_adapters(names, adapter_weights=[scale for _, scale in adapters])
            else:
                self._swap(pipeline.transformer, adapters)
        self._active = adapters

    def _swap(self, transformer, adapters: AdapterSet) -> None:
        wanted: list[tuple[str, float] | None] = [*adapters, *([None] * (self.max_per_request - len(adapters)))]
        for index, (current, entry) in enumerate(zip(self._slots, wanted, strict=True)):
            if current == entry:
                continue
            self._slots[index] = None
            weights = self._slot_weights(entry)
            transformer.load_lora_adapter(weights, prefix=None, adapter_name=f"{SLOT_PREFIX}{index}", hotswap=True)
            self._slots[index] = entry

    def _slot_weights(self, entry: tuple[str, float] | None) -> dict[str, torch.Tensor]:
        assert self._hotswap is not None
        if entry is None:
            # Any adapter at scale 0: its lora_B becomes zeros, the slot adds nothing.
            name, scale = next(iter(self._hotswap)), 0.0
        else:
            name, scale = entry
        return {key: value * scale if ".lora_B." in key else value for key, value in self._hotswap[name].items()}


def load_loras(
    name: str,
    pipeline,
    sources: Sequence[LoraSource],
    *,
    max_per_request: int,
    compiled: bool,
) -> ModelLoras:
    """Load ``sources`` into ``pipeline`` (model ``name``) and leave it running the base model.

    Must run before the compiled blocks are first called (compile is lazy: graphs are
    built at warm-up). Raises LoraLoadError naming the adapter and its file when one does
    not fit the model, and for adapters hot-swap cannot carry under ``--compile``.
    """
    if max_per_request < 1:
        raise ValueError(f"--max-loras-per-request must be at least 1, got {max_per_request}")
    if not hasattr(pipeline, "load_lora_weights"):
        raise LoraLoadError(f"model {name!r}: diffusers has no LoRA loader for {type(pipeline).__name__}")
    names = [source.name for source in sources]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise LoraLoadError(f"model {name!r}: LoRA names must be unique; repeated: {', '.join(repeated)}")
    adapters = {}
    for index, source in enumerate(sources):
        with warnings.catch_warnings():
            # peft warns on every adapter after the first that the model holds several: that is the point.
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            adapters[source.name] = _load_one(name, pipeline, source, f"{ADAPTER_PREFIX}{index}")
        info = adapters[source.name]
        logger.info(
            "model %r: LoRA %r from %s (rank %d, %d layers of %s)",
            name,
            info.name,
            info.source,
            info.rank,
            info.layers,
            ", ".join(info.components),
        )
    hotswap = _prepare_hotswap(name, pipeline, adapters, max_per_request) if compiled else None
    pipeline.disable_lora()
    return ModelLoras(adapters, max_per_request, hotswap)


def _lora_components(pipeline) -> list[tuple[str, torch.nn.Module]]:
    return [
        (component, module)
        for component in getattr(pipeline, "_lora_loadable_modules", ())
        if isinstance(module := getattr(pipeline, component, None), torch.nn.Module)
    ]


def _adapter_weights(module: torch.nn.Module, adapter: str) -> dict[str, torch.Tensor]:
    """The LoRA A and B weights of ``adapter`` in ``module``, by state-dict key (adapter name left out)."""
    from peft.tuners.lora import LoraLayer

    weights = {}
    for path, layer in module.named_modules():
        if isinstance(layer, LoraLayer) and adapter in layer.lora_A:
            weights[f"{path}.lora_A.weight"] = layer.lora_A[adapter].weight
            weights[f"{path}.lora_B.weight"] = layer.lora_B[adapter].weight
    return weights


def _load_one(model: str, pipeline, source: LoraSource, adapter_name: str) -> AdapterInfo:
    path = pathlib.Path(source.path)
    where = f"LoRA {source.name!r} ({path})"
    if not path.exists():
        raise LoraLoadError(f"{where}: no such file or directory")
    try:
        state = pipeline.lora_state_dict(str(path))
        state = state[0] if isinstance(state, tuple) else state
    except Exception as err:  # diffusers raises many types for an unreadable or unknown file
        raise LoraLoadError(f"{where}: not a LoRA file diffusers can read: {err}") from err
    expected = sorted(key for key in state if ".lora_A." in key or ".lora_B." in key)
    if not expected:
        raise LoraLoadError(f"{where}: holds no LoRA weights (lora_A / lora_B) diffusers recognises")
    try:
        pipeline.load_lora_weights(str(path), adapter_name=adapter_name)
    except Exception as err:  # peft: target modules not found; torch: size mismatch
        _forget(pipeline, adapter_name)
        raise LoraLoadError(f"{where} does not fit model {model!r} ({type(pipeline).__name__}): {err}") from err
    loaded = {component: _adapter_weights(module, adapter_name) for component, module in _lora_components(pipeline)}
    count = sum(len(weights) for weights in loaded.values())
    if count != len(expected):
        _forget(pipeline, adapter_name)
        known = {f"{component}.{key}" for component, weights in loaded.items() for key in weights}
        missing = [key for key in expected if key not in known][:3]
        raise LoraLoadError(
            f"{where} does not fit model {model!r} ({type(pipeline).__name__}): {len(expected) - count} of its "
            f"{len(expected)} weights match no layer of the model, e.g. {', '.join(missing)}"
        )
    ranks = [w.shape[0] for weights in loaded.values() for key, w in weights.items() if ".lora_A." in key]
    return AdapterInfo(
        name=source.name,
        source=str(path),
        adapter_name=adapter_name,
        rank=max(ranks),
        layers=len(ranks),
        components=tuple(component for component, weights in loaded.items() if weights),
    )


def _forget(pipeline, adapter: str) -> None:
    """Remove what a failed load left of ``adapter`` (diffusers removes most of it itself)."""
    try:
        pipeline.delete_adapters(adapter)
    except Exception:  # nothing of it was left
        pass


def _prepare_hotswap(
    name: str, pipeline, adapters: dict[str, AdapterInfo], slots: int
) -> dict[str, dict[str, torch.Tensor]]:
    """Replace the named adapters by ``slots`` hot-swappable slots; each adapter's effective slot weights."""
    from peft.tuners.lora import LoraLayer

    transformer = pipeline.transformer
    for info in adapters.values():
        if info.components != ("transformer",):
            raise LoraLoadError(
                f"LoRA {info.name!r} ({info.source}) adapts {', '.join(info.components)}: with --compile, "
                "adapters swap into the transformer only (diffusers cannot hot-swap text encoder adapters)"
            )
        config = transformer.peft_config[info.adapter_name]
        if config.use_dora or config.lora_bias:
            raise LoraLoadError(
                f"LoRA {info.name!r} ({info.source}) uses DoRA or a LoRA bias, which hot-swapping under "
                "--compile does not carry"
            )
    target_rank = max(info.rank for info in adapters.values())
    effective: dict[str, dict[str, torch.Tensor]] = {}
    for info in adapters.values():
        adapter, weights = info.adapter_name, {}
        for path, layer in transformer.named_modules():
            if not (isinstance(layer, LoraLayer) and adapter in layer.lora_A):
                continue
            # The adapter's own alpha / r (peft sets it at load, with scale 1), folded into lora_B.
            scaling = layer.scaling[adapter]
            down = layer.lora_A[adapter].weight.detach()
            up = layer.lora_B[adapter].weight.detach() * scaling
            pad = target_rank - down.shape[0]
            weights[f"{path}.lora_A.weight"] = torch.nn.functional.pad(down, (0, 0, 0, pad)).clone()
            weights[f"{path}.lora_B.weight"] = torch.nn.functional.pad(up, (0, pad)).clone()
        effective[info.name] = weights
    pipeline.delete_adapters([info.adapter_name for info in adapters.values()])
    # Every slot covers every layer any adapter adapts; an adapter that leaves a layer out writes zeros there.
    union: dict[str, torch.Tensor] = {}
    for weights in effective.values():
        for key, value in weights.items():
            union.setdefault(key, torch.zeros_like(value))
    for weights in effective.values():
        for key, value in union.items():
            weights.setdefault(key, value)
    pipeline.enable_lora_hotswap(target_rank=target_rank)
    slot_names = [f"{SLOT_PREFIX}{index}" for index in range(slots)]
    for slot in slot_names:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            transformer.load_lora_adapter(dict(union), prefix=None, adapter_name=slot)
    transformer.set_adapters(slot_names)
    logger.info("model %r: %d LoRA slots of rank %d for hot-swapping under compile", name, slots, target_rank)
    return effective


def validate_scale(scale: float) -> str | None:
    """Why ``scale`` is not an acceptable adapter scale, or None."""
    if not math.isfinite(scale) or abs(scale) > MAX_LORA_SCALE:
        return f"must be a finite number between {-MAX_LORA_SCALE:g} and {MAX_LORA_SCALE:g}, got {scale}"
    return None


def as_adapter_set(pairs: Sequence[tuple[str, float]]) -> AdapterSet:
    """Validated (name, scale) pairs as a call's adapter set: sorted by name, scale-0 adapters left out."""
    return tuple(sorted((name, float(scale)) for name, scale in pairs if scale != 0.0))


def describe(adapters: AdapterSet) -> str:
    """``outline:1,style:0.5`` (``none`` for the base model), for logs."""
    return ",".join(f"{name}:{scale:g}" for name, scale in adapters) or "none"


__all__ = [
    "DEFAULT_MAX_LORAS_PER_REQUEST",
    "LORA_NAME_PATTERN",
    "LORA_QUANT_SCHEMES",
    "MAX_LORA_SCALE",
    "AdapterInfo",
    "AdapterSet",
    "LoraLoadError",
    "LoraSource",
    "ModelLoras",
    "as_adapter_set",
    "check_quantize",
    "describe",
    "load_loras",
    "parse_lora_arg",
    "validate_scale",
]
