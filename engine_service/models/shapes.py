"""The world of the embedded default model: coloured shapes on coloured backgrounds.

The model was trained on 64x64 images described as "a <colour> <shape> on a
<colour> background"; this module holds that vocabulary, the colours as RGB,
and the drawing of one such image. The training script draws its dataset with
it, and the tests judge generated images by the same palette.
"""

from __future__ import annotations

import numpy as np

#: RGB of each colour word the model knows.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 30),
    "white": (240, 240, 240),
    "black": (20, 20, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
#: Every word of the prompts; anything else is an unknown token to the model.
WORDS: tuple[str, ...] = ("a", "on", "background", *COLOURS, *SHAPES)
IMAGE_SIZE = 64
#: Largest offset of a shape's centre from the image centre, in pixels: the centre pixels always
#: belong to the shape and the corners always to the background.
CENTRE_JITTER = 4
#: Size ranges in pixels: circle radius, square half-side, triangle circumradius (upright, equilateral).
SIZE_RANGES: dict[str, tuple[float, float]] = {"circle": (12, 22), "square": (11, 19), "triangle": (20, 28)}


def prompt(colour: str, shape: str, background: str | None = None) -> str:
    """The sentence the model was trained on: "a red circle on a blue background"."""
    text = f"a {colour} {shape}"
    return text if background is None else f"{text} on a {background} background"


def prompt_set(count: int) -> list[str]:
    """``count`` different full prompts in a fixed order, cycling the shapes and spreading the colour pairs."""
    pairs = [(a, b) for a in COLOURS for b in COLOURS if a != b]
    if count > len(pairs) * len(SHAPES):
        raise ValueError(f"at most {len(pairs) * len(SHAPES)} different prompts, asked for {count}")
    picks = [pairs[(7 * i) % len(pairs)] for i in range(count)]
    return [prompt(colour, SHAPES[i % len(SHAPES)], background) for i, (colour, background) in enumerate(picks)]


def _signed_distance(shape: str, x: np.ndarray, y: np.ndarray, size: float) -> np.ndarray:
    """Signed distance in pixels to the shape's outline (negative inside), shape centred at (0, 0)."""
    if shape == "circle":
        return np.hypot(x, y) - size
    if shape == "square":
        return np.maximum(np.abs(x), np.abs(y)) - size
    if shape == "triangle":
        # Outward edge normals of an upright triangle (image y points down); the inradius is R / 2.
        normals = [(0.0, 1.0), (np.sqrt(3) / 2, -0.5), (-np.sqrt(3) / 2, -0.5)]
        return np.max([nx * x + ny * y for nx, ny in normals], axis=0) - size / 2
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def draw(
    colour: str,
    shape: str,
    background: str,
    rng: np.random.Generator,
    size: int = IMAGE_SIZE,
    outline: float | None = None,
) -> np.ndarray:
    """One antialiased image (uint8, H x W x 3): the shape near the centre at a random size.

    ``outline``: draw only a band of this many pixels (at 64x64) inside the shape's edge, the
    inside left in the background colour (the demo LoRA's style); None = a filled shape."""
    low, high = SIZE_RANGES[shape]
    scale = size / IMAGE_SIZE
    centre = size / 2 + rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, size=2) * scale
    extent = rng.uniform(low, high) * scale
    coords = np.arange(size) + 0.5
    x, y = np.meshgrid(coords - centre[0], coords - centre[1])
    distance = _signed_distance(shape, x, y, extent)
    coverage = np.clip(0.5 - distance, 0.0, 1.0)
    if outline is not None:
        coverage = coverage - np.clip(0.5 - distance - outline * scale, 0.0, 1.0)
    coverage = coverage[..., None]
    image = coverage * np.array(COLOURS[colour]) + (1 - coverage) * np.array(COLOURS[background])
    return np.round(image).astype(np.uint8)


def nearest_colour(rgb: np.ndarray) -> str:
    """The palette colour closest (Euclidean in RGB) to ``rgb`` (three values in 0..255)."""
    names = list(COLOURS)
    distances = [np.linalg.norm(np.asarray(rgb, dtype=float) - np.array(COLOURS[name])) for name in names]
    return names[int(np.argmin(distances))]


def centre_and_corner_colours(image: np.ndarray, patch: int = 6) -> tuple[str, list[str]]:
    """The colour of the central ``patch`` x ``patch`` pixels and of each corner's, by the palette."""
    height, width = image.shape[:2]
    top, left = (height - patch) // 2, (width - patch) // 2
    centre = nearest_colour(image[top : top + patch, left : left + patch].reshape(-1, 3).mean(axis=0))
    corners = [
        image[rows, cols].reshape(-1, 3).mean(axis=0)
        for rows in (slice(0, patch), slice(height - patch, height))
        for cols in (slice(0, patch), slice(width - patch, width))
    ]
    return centre, [nearest_colour(c) for c in corners]
