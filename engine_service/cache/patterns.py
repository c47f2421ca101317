"""Forward patterns: how a transformer block takes and returns its hidden states.

H = hidden_states, E = encoder_hidden_states, or another second stream the block
updates beside H (LTX-2's ``audio_hidden_states``), named by the block group's layout.

=========  ===========  ============
pattern    block takes  block returns
=========  ===========  ============
Pattern_0  H, E         (H, E)
Pattern_1  H, E         (E, H)
Pattern_2  H, E         H
Pattern_3  H            H
Pattern_4  H            (H, E)
Pattern_5  H            (E, H)
=========  ===========  ============

The pattern is read from the block itself (or, for the few blocks whose source
misleads, from :data:`KNOWN_PATTERNS`): the parameter names of its
``forward`` say what it takes, and its ``return`` statements say what it returns
and in which order. The first real call checks the detection against what the
block actually returned.
"""

from __future__ import annotations

import ast
import enum
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import torch

ENCODER_NAME = "encoder_hidden_states"


class ForwardPattern(enum.Enum):
    """The six block signatures; flags as ``(Return_H_First, Return_H_Only, Forward_H_only)``."""

    Pattern_0 = (True, False, False)
    Pattern_1 = (False, False, False)
    Pattern_2 = (False, True, False)
    Pattern_3 = (False, True, True)
    Pattern_4 = (True, False, True)
    Pattern_5 = (False, False, True)

    @property
    def Return_H_First(self) -> bool:  # noqa: N802 - names follow cache-dit
        return self.value[0]

    @property
    def Return_H_Only(self) -> bool:  # noqa: N802
        return self.value[1]

    @property
    def Forward_H_only(self) -> bool:  # noqa: N802
        return self.value[2]

    @property
    def takes_encoder(self) -> bool:
        return not self.Forward_H_only

    @property
    def returns_encoder(self) -> bool:
        return not self.Return_H_Only

    @staticmethod
    def supported_patterns() -> list[ForwardPattern]:
        return list(ForwardPattern)


class PatternError(ValueError):
    """A block's pattern cannot be detected, or the block did not behave as its pattern says."""


def _forward_params(block: torch.nn.Module) -> list[inspect.Parameter]:
    params = inspect.signature(block.forward).parameters.values()
    return [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _returned_names(block: torch.nn.Module) -> list[tuple[str, ...]] | None:
    """The names in each ``return`` of the block's forward: ``("encoder_hidden_states", "hidden_states")``."""
    try:
        source = textwrap.dedent(inspect.getsource(type(block).forward))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    func = tree.body[0]
    shapes: list[tuple[str, ...]] = []
    for node in ast.walk(func):
        if isinstance(node, ast.Return) and node.value is not None:
            value = node.value
            elements = value.elts if isinstance(value, ast.Tuple) else [value]
            shapes.append(tuple(e.id if isinstance(e, ast.Name) else "?" for e in elements))
    return shapes or None


#: Block class name -> its pattern, for blocks whose source says more than their calls do: what they
#: return depends on an argument the transformer leaves at its default.
KNOWN_PATTERNS: dict[str, ForwardPattern] = {
    # Returns (E, H) only when called with split_hidden_states=True; FLUX.2 calls it with E=None, the
    # text already joined to H, and gets H back.
    "Flux2SingleTransformerBlock": ForwardPattern.Pattern_2,
}


def detect_forward_pattern(block: torch.nn.Module) -> ForwardPattern:
    """The block's pattern: :data:`KNOWN_PATTERNS`, else read from its forward signature and return statements."""
    if "forward" in block.__dict__:  # an instance-level forward: read that one
        return _detect(block)
    known = KNOWN_PATTERNS.get(type(block).__name__)
    if known is not None:
        return known
    pattern = _DETECTED.get(type(block))
    if pattern is None:
        pattern = _DETECTED[type(block)] = _detect(block)
    return pattern


#: Patterns read so far, per block class: reading source code costs milliseconds, and the
#: engine enables the cache for every request.
_DETECTED: dict[type, ForwardPattern] = {}


def _detect(block: torch.nn.Module) -> ForwardPattern:
    params = _forward_params(block)
    if not params:
        raise PatternError(f"{type(block).__name__}.forward takes no hidden states")
    takes_encoder = len(params) > 1 and params[1].name == ENCODER_NAME
    hidden_name = params[0].name
    returns = _returned_names(block)
    if returns is None:
        raise PatternError(f"cannot read what {type(block).__name__}.forward returns; pass forward_pattern explicitly")
    # A block may return early in a special case (e.g. only hidden states for a final layer);
    # the longest return is the general one.
    names = max(returns, key=len)
    if len(names) == 1:
        return ForwardPattern.Pattern_2 if takes_encoder else ForwardPattern.Pattern_3
    if len(names) == 2:
        encoder_first = "encoder" in names[0] or names[1] == hidden_name
        hidden_first = names[0] == hidden_name or "encoder" in names[1]
        if encoder_first == hidden_first:
            raise PatternError(
                f"cannot tell the order of {type(block).__name__}.forward's outputs {names}; "
                "pass forward_pattern explicitly"
            )
        if takes_encoder:
            return ForwardPattern.Pattern_0 if hidden_first else ForwardPattern.Pattern_1
        return ForwardPattern.Pattern_4 if hidden_first else ForwardPattern.Pattern_5
    raise PatternError(f"{type(block).__name__}.forward returns {len(names)} values; pass forward_pattern explicitly")


class BlockCall:
    """One call of a block list, as the transformer made it; re-issued with new hidden states.

    The runner that stands in for a block list receives exactly the arguments the
    first block would have received. ``BlockCall`` remembers where H and E sit
    (positional or keyword) so every block is called the same way. ``hidden_name`` and
    ``encoder_name`` are the parameters that take H and E (``encoder_hidden_states``
    unless the layout names another stream, e.g. LTX-2's ``audio_hidden_states``).
    ``positions`` are the block's positional parameter names: a stream passed by position
    is found at its parameter's place (Cosmos 3's blocks take the text stream first and
    the generated tokens, their H, second); without them, or for a name not among them,
    H is the first argument and E the next.
    """

    __slots__ = ("args", "kwargs", "pattern", "_h_key", "_e_key", "hidden", "encoder")

    def __init__(
        self,
        pattern: ForwardPattern,
        hidden_name: str,
        args: tuple,
        kwargs: dict[str, Any],
        encoder_name: str = ENCODER_NAME,
        positions: tuple[str, ...] = (),
    ):
        self.pattern = pattern
        self.args = list(args)
        self.kwargs = dict(kwargs)
        self._h_key: int | str = hidden_name if hidden_name in kwargs else _place(positions, hidden_name, 0)
        if isinstance(self._h_key, int) and self._h_key >= len(args):
            raise PatternError(f"the block list was called without {hidden_name!r}")
        self.hidden: torch.Tensor = self._get(self._h_key)
        self._e_key: int | str | None = None
        self.encoder: torch.Tensor | None = None
        if pattern.takes_encoder:
            if encoder_name in kwargs:
                self._e_key = encoder_name
            else:
                self._e_key = _place(positions, encoder_name, 1 if self._h_key == 0 else 0)
                if self._e_key >= len(args):
                    raise PatternError(f"the block list was called without {encoder_name!r}")
            self.encoder = self._get(self._e_key)

    def _get(self, key: int | str):
        return self.kwargs[key] if isinstance(key, str) else self.args[key]

    def _set(self, key: int | str, value) -> None:
        if isinstance(key, str):
            self.kwargs[key] = value
        else:
            self.args[key] = value

    def run(
        self, block: Callable[..., Any], hidden: torch.Tensor, encoder: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Call ``block`` with these arguments but the given H (and E); return its (H, E)."""
        self._set(self._h_key, hidden)
        if self._e_key is not None:
            self._set(self._e_key, encoder)
        out = block(*self.args, **self.kwargs)
        return self.split_output(out, block, encoder)

    def split_output(self, out: Any, block: Any, encoder: torch.Tensor | None):
        pattern = self.pattern
        if isinstance(out, torch.Tensor):
            if not pattern.Return_H_Only:
                raise PatternError(f"{type(block).__name__} returned one tensor, but {pattern.name} returns two")
            return out, encoder
        if not isinstance(out, (tuple, list)):
            raise PatternError(f"{type(block).__name__} returned {type(out).__name__}, expected tensors")
        if pattern.Return_H_Only:
            if len(out) == 1 or (len(out) == 2 and out[1] is None):
                return out[0], encoder
            raise PatternError(f"{type(block).__name__} returned {len(out)} values, but {pattern.name} returns H only")
        if len(out) != 2:
            raise PatternError(f"{type(block).__name__} returned {len(out)} values, but {pattern.name} returns two")
        if pattern.Return_H_First:
            return out[0], out[1]
        return out[1], out[0]

    def output(self, hidden: torch.Tensor, encoder: torch.Tensor | None):
        """What the block list returns to the transformer, in the pattern's order."""
        pattern = self.pattern
        if pattern.Return_H_Only:
            return hidden
        return (hidden, encoder) if pattern.Return_H_First else (encoder, hidden)


def hidden_param_name(block: torch.nn.Module) -> str:
    params = _forward_params(block)
    return params[0].name if params else "hidden_states"


def positional_names(block: torch.nn.Module) -> tuple[str, ...]:
    """The names of the parameters ``block.forward`` takes by position, in order (read once per class)."""
    if "forward" in block.__dict__:  # an instance-level forward: read that one
        return tuple(p.name for p in _forward_params(block))
    names = _POSITIONS.get(type(block))
    if names is None:
        names = _POSITIONS[type(block)] = tuple(p.name for p in _forward_params(block))
    return names


#: Positional parameter names read so far, per block class (the cache is enabled for every request).
_POSITIONS: dict[type, tuple[str, ...]] = {}


def _place(positions: tuple[str, ...], name: str, default: int) -> int:
    """Where the argument for parameter ``name`` sits in a positional call: its place among
    ``positions``, or ``default`` when the name is not one of them."""
    return positions.index(name) if name in positions else default


__all__ = [
    "KNOWN_PATTERNS",
    "BlockCall",
    "ForwardPattern",
    "PatternError",
    "detect_forward_pattern",
    "hidden_param_name",
    "positional_names",
]
