"""Regional ``torch.compile`` of the repeated transformer blocks that never fails a request, and a compile
cache kept across restarts.

Compiling the repeated blocks instead of the whole transformer (diffusers'
``compile_repeated_blocks`` does the same) builds one graph per block class and
reuses it for every instance, so warm-up takes a fraction of a full compile. The
cache's block-list swap calls the same compiled blocks with the same inputs, so
cached and uncached requests share the graphs.

Shapes: every dimension of a block's tensor inputs but the last (batch and
sequence; the feature width stays static) is marked dynamic with
``torch._dynamo.maybe_mark_dynamic``, and duck sizing is off
(``torch.fx.experimental._config.use_duck_shape``), as diffusers' compile guidance
does for many resolutions. One graph per block class then serves every size and
batch: torch specializes sizes 0 and 1, so a one-token sequence or a batch of one
gets graphs of its own, and the engine's warm-up builds those for the batch sizes
``--max-batch`` can form.

Recompiles: a block that needs one more graph than torch's recompile limit
(``torch._dynamo.config.recompile_limit``) would fail with ``fullgraph``; here the
failure is caught before anything ran and that call, and every later call of a
shape with no graph, runs the block eagerly (``torch.compiler.set_stance
("eager_on_recompile")``: known shapes keep their graphs). :class:`CompileStats`
counts graphs built, and transformer calls that ran compiled or eager.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pathlib
import tempfile
from collections.abc import Callable

import torch
import torch._dynamo
import torch.fx.experimental._config

from engine_service.quant.config import SpeedConfigError

logger = logging.getLogger(__name__)

#: Backends accepted by ``--compile-backend`` (the others are for debugging and need no C++ or GPU toolchain).
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")


def check_compile(backend: str, mode: str | None = None) -> None:
    if backend not in COMPILE_BACKENDS:
        choices = ", ".join(COMPILE_BACKENDS)
        raise SpeedConfigError(f"--compile-backend: unknown backend {backend!r}; choose from {choices}")
    if mode is None:
        return
    if backend != "inductor":
        raise SpeedConfigError(f"--compile-mode {mode} applies to the inductor backend only, not {backend}")
    import torch._inductor

    modes = list(torch._inductor.list_mode_options())
    if mode not in modes:
        raise SpeedConfigError(f"--compile-mode: unknown mode {mode!r}; inductor has {', '.join(modes)}")


#: Exceptions torch raises when a fullgraph region needs a graph past the recompile limit (looked up by name:
#: the class lives in a private module).
_RECOMPILE_LIMIT_ERRORS = tuple(
    error
    for error in (getattr(torch._dynamo.exc, "FailOnRecompileLimitHit", None),)
    if isinstance(error, type) and issubclass(error, BaseException)
)


@dataclasses.dataclass
class CompileStats:
    """What a model's compiled blocks did since start-up (warm-up included). Updated on the device thread."""

    blocks: int = 0
    """Repeated blocks compiled."""
    graphs: int = 0
    """Graphs built (warm-up and every recompile after it)."""
    compiled_calls: int = 0
    """Transformer calls in which every repeated block ran a compiled graph."""
    eager_calls: int = 0
    """Transformer calls in which some block ran eagerly: its shape had no graph and the recompile limit was spent."""
    eager_block_calls: int = 0
    """Block calls that ran eagerly (a block of a transformer call counted in ``eager_calls``)."""
    block_calls: int = 0
    """Block calls, compiled or eager."""
    recompile_limit_hits: int = 0
    """Times a block needed a graph past torch's recompile limit (from then on its new shapes run eagerly)."""
    _graph_runs: int = dataclasses.field(default=0, repr=False)


def _backend(name: str, mode: str | None, stats: CompileStats) -> Callable:
    """The torch.compile backend ``name`` (with inductor ``mode``), counting graphs built and graph runs."""
    if name == "inductor":
        from torch._inductor import list_mode_options
        from torch._inductor.compile_fx import compile_fx

        patches = list_mode_options(mode, dynamic=None) if mode else {}

        def build(gm, example_inputs):
            return compile_fx(gm, example_inputs, config_patches=patches)
    else:
        build = torch._dynamo.lookup_backend(name)

    def backend(gm: torch.fx.GraphModule, example_inputs):
        compiled = build(gm, example_inputs)
        stats.graphs += 1

        def run(*args):
            stats._graph_runs += 1
            return compiled(*args)

        return run

    return backend


def _mark_dynamic(value) -> None:
    """Every dimension but the last of each tensor in ``value`` (tensors, tuples, lists, dicts) may vary."""
    if isinstance(value, torch.Tensor):
        for dim in range(value.dim() - 1):
            torch._dynamo.maybe_mark_dynamic(value, dim)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _mark_dynamic(item)
    elif isinstance(value, dict):
        for item in value.values():
            _mark_dynamic(item)


class _Region:
    """One compiled block class: its compiled forward, and whether it has hit the recompile limit."""

    def __init__(self, stats: CompileStats):
        self.stats = stats
        self.saturated = False

    def wrap(self, block: torch.nn.Module, compiled: Callable) -> Callable:
        stats = self.stats

        @functools.wraps(block.forward)  # the cache reads the block's signature (its forward pattern)
        def forward(*args, **kwargs):
            _mark_dynamic(args)
            _mark_dynamic(kwargs)
            runs = stats._graph_runs
            if self.saturated:
                with torch.compiler.set_stance("eager_on_recompile"):
                    output = compiled(*args, **kwargs)
            else:
                try:
                    output = compiled(*args, **kwargs)
                except _RECOMPILE_LIMIT_ERRORS:
                    # Raised while compiling, before the block ran: running it again is safe.
                    self.saturated = True
                    stats.recompile_limit_hits += 1
                    logger.warning(
                        "%s needs more graphs than torch's recompile limit (%d): new shapes run eagerly",
                        type(block).__name__,
                        torch._dynamo.config.recompile_limit,
                    )
                    with torch.compiler.set_stance("eager_on_recompile"):
                        output = compiled(*args, **kwargs)
            stats.block_calls += 1
            if stats._graph_runs == runs:
                stats.eager_block_calls += 1
            return output

        return forward


def compile_blocks(
    transformer: torch.nn.Module, backend: str, mode: str | None, stats: CompileStats | None = None
) -> CompileStats:
    """Compile each repeated block of ``transformer`` in place (``fullgraph``, dynamic batch and sequence);
    the stats its calls will update (``stats``, shared by a pipeline's transformers, or new ones).
    SpeedConfigError when the transformer declares no repeated blocks."""
    names = getattr(transformer, "_repeated_blocks", None)
    if not names:
        raise SpeedConfigError(
            f"--compile: {type(transformer).__name__} declares no repeated blocks (_repeated_blocks) to compile"
        )
    # Sizes that happen to be equal (image and text tokens) must not be assumed equal.
    torch.fx.experimental._config.use_duck_shape = False
    stats = stats if stats is not None else CompileStats()
    counting = _backend(backend, mode, stats)
    regions: dict[type, _Region] = {}
    for module in transformer.modules():
        if type(module).__name__ not in names:
            continue
        region = regions.setdefault(type(module), _Region(stats))
        # fullgraph: a graph break inside a block is a bug to fix, not a silent slowdown.
        compiled = torch.compile(module.forward, backend=counting, fullgraph=True, dynamic=None)
        module.forward = region.wrap(module, compiled)
    if not regions:
        raise SpeedConfigError(f"--compile: no module of {type(transformer).__name__} is one of {', '.join(names)}")
    stats.blocks += sum(1 for module in transformer.modules() if type(module) in regions)
    _count_transformer_calls(transformer, stats)
    return stats


def _count_transformer_calls(transformer: torch.nn.Module, stats: CompileStats) -> None:
    """Hooks that sort each transformer call into ``compiled_calls`` or ``eager_calls``."""
    start = {"blocks": 0, "eager": 0}

    def before(_module, _args) -> None:
        start.update(blocks=stats.block_calls, eager=stats.eager_block_calls)

    def after(_module, _args, _output) -> None:
        if stats.block_calls == start["blocks"]:
            return  # no repeated block ran
        if stats.eager_block_calls > start["eager"]:
            stats.eager_calls += 1
        else:
            stats.compiled_calls += 1

    transformer.register_forward_pre_hook(before)
    transformer.register_forward_hook(after)


class CompileCache:
    """A directory that keeps compiled artifacts across restarts.

    Inductor's own caches (FX graphs, AOT autograd, Triton kernels, autotuning) go to
    ``DIR/inductor``; after warm-up the engine also saves torch's portable "mega-cache"
    (``torch.compiler.save_cache_artifacts``) to ``DIR/artifacts.bin`` and loads it at the
    next start, before anything compiles. A restarted engine with the same model,
    shapes, torch version and device then skips code generation and autotuning.
    """

    ARTIFACTS = "artifacts.bin"

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = pathlib.Path(directory)

    def activate(self) -> bool:
        """Point inductor at the directory and load saved artifacts; True when there were some."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SpeedConfigError(f"--compile-cache: cannot use {self.directory}: {err}") from err
        inductor = self.directory / "inductor"
        # Read when inductor next looks for its cache; set before any compile of this process.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(inductor)
        os.environ["TRITON_CACHE_DIR"] = str(inductor / "triton")
        artifacts = self.directory / self.ARTIFACTS
        if not artifacts.is_file():
            logger.info("compile cache %s is empty: this start compiles from scratch", self.directory)
            return False
        try:
            torch.compiler.load_cache_artifacts(artifacts.read_bytes())
        except Exception as err:  # a cache from another torch version or device: compile anew
            logger.warning("compile cache %s could not be loaded (%s); compiling from scratch", artifacts, err)
            return False
        logger.info("loaded compile cache artifacts from %s", artifacts)
        return True

    def save(self) -> int:
        """Save what this process compiled so far; the bytes written (0 = nothing to save)."""
        result = torch.compiler.save_cache_artifacts()
        if result is None:
            return 0
        data, _info = result
        artifacts = self.directory / self.ARTIFACTS
        with tempfile.NamedTemporaryFile(dir=self.directory, delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, artifacts)
        logger.info("saved %d bytes of compile cache artifacts to %s", len(data), artifacts)
        return len(data)
