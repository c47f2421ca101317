"""Regional ``torch.compile`` of the repeated transformer blocks, and a compile cache kept across restarts.

Compiling the repeated blocks (diffusers' ``compile_repeated_blocks``) instead of
the whole transformer compiles one graph per block class and reuses it for every
instance, so warm-up takes a fraction of a full compile. The cache's block-list
swap calls the same compiled blocks with the same inputs, so cached and uncached
requests share the graphs. Shapes are static: each served size gets its own graph
on first use; the engine compiles the configured warm-up sizes before SERVING.
"""

from __future__ import annotations

import logging
import os
import pathlib
import tempfile

import torch

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


def compile_blocks(transformer: torch.nn.Module, backend: str, mode: str | None) -> int:
    """Compile each repeated block of ``transformer`` in place; the number of blocks compiled."""
    if not getattr(transformer, "_repeated_blocks", None) or not hasattr(transformer, "compile_repeated_blocks"):
        raise SpeedConfigError(
            f"--compile: {type(transformer).__name__} declares no repeated blocks (_repeated_blocks) to compile"
        )
    # fullgraph: a graph break inside a block is a bug to fix, not a silent slowdown.
    transformer.compile_repeated_blocks(backend=backend, mode=mode, fullgraph=True, dynamic=False)
    return sum(1 for module in transformer.modules() if type(module).__name__ in transformer._repeated_blocks)


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
