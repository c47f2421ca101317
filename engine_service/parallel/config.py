"""How an engine is split across ranks: ``--parallel ulysses=2,ring=2`` or ``--parallel tp=2``."""

from __future__ import annotations

import dataclasses
import math

#: Degrees ``--parallel`` accepts, in the order they are reported.
DEGREES = ("ulysses", "ring", "tp")


@dataclasses.dataclass(frozen=True)
class ParallelConfig:
    """Parallel degrees of one engine; every degree 1 = a single process."""

    ulysses: int = 1
    """Ulysses context parallel: the sequence is split across ranks, attention all-to-alls over heads."""
    ring: int = 1
    """Ring context parallel: the sequence is split across ranks, key/value chunks go round the ring."""
    tp: int = 1
    """Tensor parallel: the transformer's linear layers are split across ranks (DTensor)."""

    def __post_init__(self) -> None:
        for name in DEGREES:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"--parallel {name} must be a whole number of at least 1, got {value!r}")

    @classmethod
    def parse(cls, text: str) -> ParallelConfig:
        """``"ulysses=2,ring=2"`` -> ParallelConfig(ulysses=2, ring=2); ``""`` or ``"none"`` -> no parallelism."""
        text = text.strip()
        if text in ("", "none"):
            return cls()
        degrees: dict[str, int] = {}
        for item in text.split(","):
            name, sep, value = item.strip().partition("=")
            name = name.strip()
            if not sep or name not in DEGREES:
                raise ValueError(f"--parallel expects NAME=DEGREE,... with NAME in {', '.join(DEGREES)}; got {item!r}")
            if name in degrees:
                raise ValueError(f"--parallel names {name} twice")
            try:
                degrees[name] = int(value)
            except ValueError:
                raise ValueError(f"--parallel {name} must be a whole number, got {value!r}") from None
        return cls(**degrees)

    @property
    def context_degree(self) -> int:
        """Ranks the sequence is split across (Ulysses x Ring)."""
        return self.ulysses * self.ring

    @property
    def world_size(self) -> int:
        """Processes the configuration needs."""
        return math.prod(getattr(self, name) for name in DEGREES)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def __str__(self) -> str:
        parts = [f"{name}={getattr(self, name)}" for name in DEGREES if getattr(self, name) > 1]
        return ",".join(parts) or "none"
