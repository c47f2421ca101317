"""PSNR and SSIM (engine_service.metrics) and ``ditserve metrics`` over files and folders."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from engine_service import cli
from engine_service.metrics import psnr, ssim


def _image(seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def _offset(image: np.ndarray, delta: int) -> np.ndarray:
    return np.clip(image.astype(int) + delta, 0, 255).astype(np.uint8)


def test_psnr_of_a_uniform_error_is_its_closed_form():
    a = np.full((16, 16, 3), 100, dtype=np.uint8)
    assert psnr(a, a + 5) == pytest.approx(10 * math.log10(255**2 / 25))
    assert psnr(a, a) == math.inf
    assert psnr(a / 255, (a + 5) / 255, data_range=1.0) == pytest.approx(psnr(a, a + 5))


def test_ssim_of_two_flat_images_is_the_luminance_term():
    a, b = np.full((16, 16), 100.0), np.full((16, 16), 110.0)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1))
    assert ssim(a, a) == pytest.approx(1.0)


def _ssim_by_windows(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of one channel written out window by window, as the definition reads."""
    offsets = np.arange(11) - 5
    weights = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    weights /= weights.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            x, y = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            mx, my = (weights * x).sum(), (weights * y).sum()
            vx, vy = (weights * (x - mx) ** 2).sum(), (weights * (y - my) ** 2).sum()
            cov = (weights * (x - mx) * (y - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_the_window_by_window_definition():
    a = _image(0, 20)[..., 0].astype(float)
    b = np.clip(a + np.random.default_rng(1).normal(0, 20, a.shape), 0, 255)
    assert ssim(a, b) == pytest.approx(_ssim_by_windows(a, b), rel=1e-9)


def test_both_fall_as_noise_grows_and_are_symmetric():
    rng = np.random.default_rng(2)
    image = _image(3)
    slight = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(image + rng.normal(0, 40, image.shape), 0, 255).astype(np.uint8)
    assert psnr(image, slight) > psnr(image, heavy) and ssim(image, slight) > ssim(image, heavy)
    assert ssim(image, heavy) == pytest.approx(ssim(heavy, image))
    with pytest.raises(ValueError, match="shape"):
        psnr(image, image[:16])


def _save(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def test_cli_compares_two_files_and_two_folders(tmp_path, capsys):
    a, b = _image(4), _offset(_image(4), 5)
    _save(tmp_path / "a.png", a)
    _save(tmp_path / "b.png", b)
    assert cli.main(["metrics", "psnr", str(tmp_path / "a.png"), str(tmp_path / "b.png")]) == 0
    assert f"{psnr(a, b):.4f} dB" in capsys.readouterr().out

    for name, seed in (("x.png", 5), ("y.png", 6)):
        _save(tmp_path / "full" / name, _image(seed))
        _save(tmp_path / "cached" / name, _offset(_image(seed), -3))
    assert cli.main(["metrics", "ssim", str(tmp_path / "full"), str(tmp_path / "cached")]) == 0
    lines = capsys.readouterr().out.splitlines()
    values = [ssim(_image(s), _offset(_image(s), -3)) for s in (5, 6)]
    assert [line.split()[0] for line in lines] == ["x.png", "y.png", "mean"]
    assert lines[0].split()[1] == f"{values[0]:.4f}" and lines[2].split()[1] == f"{np.mean(values):.4f}"


def test_cli_pairs_folders_by_name_without_extension_and_reports_the_rest(tmp_path, capsys):
    _save(tmp_path / "full" / "7-0.png", _image(7))
    _save(tmp_path / "full" / "8-0.png", _image(8))
    _save(tmp_path / "cached" / "7-0.webp", _image(7))
    assert cli.main(["metrics", "psnr", str(tmp_path / "full"), str(tmp_path / "cached")]) == 0
    captured = capsys.readouterr()
    assert captured.out.split()[0] == "7-0.png" and "8-0.png" in captured.err


def test_cli_pairs_two_single_images_and_refuses_folders_that_share_no_name(tmp_path, capsys):
    _save(tmp_path / "one" / "a1b2.png", _image(7))
    _save(tmp_path / "two" / "c3d4.png", _offset(_image(7), 4))
    assert cli.main(["metrics", "psnr", str(tmp_path / "one"), str(tmp_path / "two")]) == 0
    assert f"{psnr(_image(7), _offset(_image(7), 4)):.4f} dB" in capsys.readouterr().out
    _save(tmp_path / "one" / "x.png", _image(7))
    assert cli.main(["metrics", "psnr", str(tmp_path / "one"), str(tmp_path / "two")]) == 2
    assert "no image" in capsys.readouterr().err
