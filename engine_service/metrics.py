"""Image similarity: PSNR and SSIM, for comparing a cached image with its uncached reference.

Both take two images of the same shape (H x W or H x W x C, uint8 or float) and
a ``data_range`` (255 for uint8 images). SSIM follows Wang et al. (2004): an
11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, computed per channel
over the positions where the window fits inside the image, then averaged.
Only numpy is needed (Pillow to read files).
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Callable

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB: 10 log10(range^2 / MSE); ``inf`` for identical images."""
    a, b = _pair(a, b)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    offsets = np.arange(size) - (size - 1) / 2
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable weighted mean over every window position that fits in the image (H x W)."""
    size = len(window)
    rows = np.lib.stride_tricks.sliding_window_view(image, size, axis=0) @ window
    return np.lib.stride_tricks.sliding_window_view(rows, size, axis=1) @ window


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean structural similarity (1.0 for identical images); needs images of at least 11 x 11 pixels."""
    a, b = _pair(a, b)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    window = _gaussian_window()
    if min(a.shape[:2]) < len(window):
        raise ValueError(f"SSIM needs images of at least {len(window)}x{len(window)} pixels, got {a.shape[:2]}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for channel in range(a.shape[2]):
        x, y = a[..., channel], b[..., channel]
        mu_x, mu_y = _filter_valid(x, window), _filter_valid(y, window)
        var_x = _filter_valid(x * x, window) - mu_x**2
        var_y = _filter_valid(y * y, window) - mu_y**2
        cov = _filter_valid(x * y, window) - mu_x * mu_y
        numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
        denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
        values.append(np.mean(numerator / denominator))
    return float(np.mean(values))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"psnr": psnr, "ssim": ssim}


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as an RGB uint8 array (H x W x 3)."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def image_pairs(
    a: str | os.PathLike[str], b: str | os.PathLike[str], unpaired: list[str] | None = None
) -> list[tuple[pathlib.Path, pathlib.Path]]:
    """Two files, or the images of two folders paired by name.

    Images pair by file name without its extension (``7-0.png`` with ``7-0.jpg``), which is what
    ``ditserve generate`` runs with the same seeds write (``{seed}-{index}``); two folders of one
    image each pair whatever the names. Images without a partner are appended to ``unpaired``
    (when given) and skipped; no pair at all is a ValueError naming them.
    """
    a, b = pathlib.Path(a), pathlib.Path(b)
    if a.is_file() and b.is_file():
        return [(a, b)]
    if a.is_dir() and b.is_dir():
        images_a = {p.stem: p for p in sorted(a.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
        images_b = {p.stem: p for p in sorted(b.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
        if not images_a or not images_b:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {a if not images_a else b}")
        if len(images_a) == len(images_b) == 1:
            return [(next(iter(images_a.values())), next(iter(images_b.values())))]
        common = sorted(images_a.keys() & images_b.keys())
        lonely = sorted(
            [str(images_a[stem]) for stem in images_a.keys() - images_b.keys()]
            + [str(images_b[stem]) for stem in images_b.keys() - images_a.keys()]
        )
        if not common:
            raise ValueError(f"no image in {a} has a partner of the same name in {b}: {', '.join(lonely)}")
        if unpaired is not None:
            unpaired.extend(lonely)
        return [(images_a[stem], images_b[stem]) for stem in common]
    raise ValueError(f"expected two image files or two folders, got {a} and {b}")


def compare(
    metric: str, a: str | os.PathLike[str], b: str | os.PathLike[str], unpaired: list[str] | None = None
) -> list[tuple[str, float]]:
    """``metric`` ("psnr" or "ssim") for each image pair of ``a`` and ``b`` (see ``image_pairs``)."""
    function = METRICS[metric]
    return [(pa.name, function(load_image(pa), load_image(pb))) for pa, pb in image_pairs(a, b, unpaired)]
