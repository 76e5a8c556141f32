"""Corrupted CIFAR-10 corruptions: the contract (shapes, range, determinism, errors), a real
effect per family, the level ordering, and agreement with the libraries the reference used where
they are available here (scipy, Pillow, colorsys) or with its definitions written out plainly."""
from __future__ import annotations

import colorsys
import io
import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
from PIL import Image

from ddcore.data import corruptions as C
from ddcore.data.corruptions import CORRUPTION_TYPES, CORRUPTIONS, SEVERITY_PARAMS, corrupt
from ddcore.errors import ConfigError

ALL = CORRUPTION_TYPES[0] + CORRUPTION_TYPES[1]
DETERMINISTIC = {"gaussian_blur", "defocus_blur", "zoom_blur", "brightness", "contrast", "saturate",
                 "jpeg_compression", "pixelate", "original"}
RANDOM = [name for name in ALL if name not in DETERMINISTIC]
NOISES = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
BLURS = ("gaussian_blur", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def natural(n: int = 8, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    """Natural-ish images in [0.1, 0.95]: smooth colour fields, a flat rectangle, a little texture."""
    g = gen(seed)
    smooth = F.interpolate(torch.rand(n, 3, 5, 5, generator=g), size=(h, w), mode="bicubic", align_corners=True)
    x = 0.1 + 0.8 * smooth.clamp(0, 1) + 0.05 * torch.rand(n, 3, h, w, generator=g)
    x[:, :, h // 3 : 2 * h // 3, w // 4 : 2 * w // 3] = 0.1 + 0.8 * torch.rand(n, 3, 1, 1, generator=g)
    return x


def noise_image(n: int = 8, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=gen(3))


def high_frequency_share(x: torch.Tensor) -> float:
    """Share of the spectral power (mean removed) above a quarter of the sampling frequency."""
    power = torch.fft.fft2(x - x.mean(dim=(2, 3), keepdim=True)).abs() ** 2
    f = torch.fft.fftfreq(x.shape[-1]).abs()
    band = (f[:, None] > 0.25) | (f[None, :] > 0.25)
    return ((power * band).sum() / power.sum()).item()


def hsv(x: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] -> float64 [pixels, 3] HSV via colorsys (the conventions skimage uses)."""
    rgb = x.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()
    return np.array([colorsys.rgb_to_hsv(*p) for p in rgb])


# ---------------------------------------------------------------- contract


def test_lists_and_tables() -> None:
    assert CORRUPTION_TYPES[0] == ("snow", "frost", "fog", "brightness", "contrast", "spatter",
                                   "elastic_transform", "jpeg_compression", "pixelate", "saturate")
    assert CORRUPTION_TYPES[1] == ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "gaussian_blur",
                                   "defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "original")
    assert set(CORRUPTIONS) == set(ALL) and len(ALL) == 20
    assert all(len(SEVERITY_PARAMS[name]) == 5 for name in ALL)


@pytest.mark.parametrize("severity", [1, 5])
@pytest.mark.parametrize("name", ALL)
def test_shape_dtype_range_and_input_untouched(name: str, severity: int) -> None:
    x = natural()
    before = x.clone()
    out = corrupt(x, name, severity, gen())
    assert out.shape == x.shape and out.dtype == torch.float32 and out.device == x.device
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert torch.equal(x, before)


@pytest.mark.parametrize("name", ALL)
def test_other_sizes_work(name: str) -> None:
    """Below and above the size where linear ops run as one matrix product."""
    for h, w in ((16, 16), (40, 36)):
        out = corrupt(natural(2, h, w), name, 5, gen())
        assert out.shape == (2, 3, h, w) and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", ALL)
def test_deterministic_given_the_generator(name: str) -> None:
    x = natural()
    for severity in (1, 5):
        a, b = corrupt(x, name, severity, gen(7)), corrupt(x, name, severity, gen(7))
        assert torch.equal(a, b)
        other = corrupt(x, name, severity, gen(8))
        if name in DETERMINISTIC:
            assert torch.equal(a, other)
        else:
            assert not torch.equal(a, other)


@pytest.mark.parametrize("severity", [1, 5])
@pytest.mark.parametrize("name", [n for n in ALL if n != "original"])
def test_every_corruption_changes_an_image(name: str, severity: int) -> None:
    x = natural()
    assert (corrupt(x, name, severity, gen()) - x).abs().mean() > 1e-3


def test_original_is_the_identity() -> None:
    x = natural()
    for severity in range(1, 6):
        out = corrupt(x, "original", severity, gen())
        assert torch.equal(out, x) and out is not x


def test_empty_batch() -> None:
    assert corrupt(torch.zeros(0, 3, 32, 32), "snow", 3, gen()).shape == (0, 3, 32, 32)


def test_bad_names_and_severities_raise_config_errors() -> None:
    x = natural(1)
    with pytest.raises(ConfigError, match="unknown corruption 'gauss'.*gaussian_noise.*original"):
        corrupt(x, "gauss", 1, gen())
    for severity in (0, 6, -1, 2.0, True, "3", None):
        with pytest.raises(ConfigError, match=r"integer 1\.\.5"):
            corrupt(x, "fog", severity, gen())
    assert issubclass(ConfigError, ValueError)
    assert corrupt(x, "fog", np.int64(3), gen()).shape == x.shape


@pytest.mark.parametrize("images, got", [
    (torch.rand(3, 32, 32), r"shape \[3, 32, 32\]"),
    (torch.rand(2, 1, 32, 32), r"shape \[2, 1, 32, 32\]"),
    (torch.rand(2, 3, 8, 32), r"shape \[2, 3, 8, 32\]"),
    (torch.rand(2, 3, 32, 32, dtype=torch.float64), "dtype torch.float64"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "dtype torch.uint8"),
    (torch.full((2, 3, 32, 32), 1.5), r"values in \[1\.5, 1\.5\]"),
    (torch.full((2, 3, 32, 32), -0.25), r"values in \[-0\.25, -0\.25\]"),
    (torch.full((2, 3, 32, 32), math.nan), "nan"),
    (np.zeros((2, 3, 32, 32), np.float32), "got a ndarray"),
])
def test_bad_images_raise_value_errors(images: object, got: str) -> None:
    with pytest.raises(ValueError, match=r"float32 images \[N, 3, H, W\] with H, W >= 16.*" + got):
        corrupt(images, "contrast", 1, gen())  # type: ignore[arg-type]


def test_bad_generator_raises() -> None:
    with pytest.raises(ValueError, match="CPU torch.Generator, got None"):
        corrupt(natural(1), "fog", 1, None)  # type: ignore[arg-type]


@pytest.mark.cuda
@pytest.mark.parametrize("name", ALL)
def test_cuda_matches_cpu(name: str) -> None:
    x = natural(4)
    out = corrupt(x.cuda(), name, 5, gen())
    assert out.device.type == "cuda"
    assert torch.allclose(out.cpu(), corrupt(x, name, 5, gen()), atol=2e-3)


# ---------------------------------------------------------------- effects and ordering


@pytest.mark.parametrize("name", NOISES)
def test_noise_raises_variance_of_a_flat_image(name: str) -> None:
    flat = torch.full((8, 3, 32, 32), 0.5)
    low, high = (corrupt(flat, name, s, gen()).var().item() for s in (1, 5))
    assert 1e-4 < low < high


@pytest.mark.parametrize("name", BLURS)
def test_blurs_remove_high_frequencies_and_keep_flat_images(name: str) -> None:
    x = noise_image()
    share = high_frequency_share(x)
    low, high = (high_frequency_share(corrupt(x, name, s, gen())) for s in (1, 5))
    assert high < low < share
    flat = torch.full((2, 3, 32, 32), 0.3)
    assert torch.allclose(corrupt(flat, name, 5, gen()), flat, atol=1e-5)


def test_colour_corruptions() -> None:
    x = natural()
    brighter = [corrupt(x, "brightness", s, gen()).mean() for s in (1, 5)]
    assert x.mean() < brighter[0] < brighter[1]
    flatter = [corrupt(x, "contrast", s, gen()).std(dim=(2, 3)) for s in (1, 5)]
    assert (flatter[1] < flatter[0]).all() and (flatter[0] < x.std(dim=(2, 3))).all()
    saturation = hsv(x)[:, 1].mean()
    assert hsv(corrupt(x, "saturate", 1, gen()))[:, 1].mean() < 0.5 * saturation  # levels 1-2 desaturate
    assert hsv(corrupt(x, "saturate", 5, gen()))[:, 1].mean() > 1.5 * saturation


def test_pixelate_makes_blocks() -> None:
    x = noise_image()
    out = corrupt(x, "pixelate", 5, gen())  # 32 -> int(32 * 0.65) = 20 -> 32
    same_cols = (out[..., :, 1:] == out[..., :, :-1]).all(dim=2).all(dim=1).sum(1)
    same_rows = (out[..., 1:, :] == out[..., :-1, :]).all(dim=3).all(dim=1).sum(1)
    assert (same_cols == 12).all() and (same_rows == 12).all()


def test_jpeg_changes_the_image_but_stays_close() -> None:
    x = natural()
    for severity in (1, 5):
        out = corrupt(x, "jpeg_compression", severity, gen())
        error = (out - x).abs().mean()
        assert 1e-3 < error < 0.04
        assert torch.equal((out * 255).round() / 255, out)  # decoded 8-bit pixels
    assert (corrupt(x, "jpeg_compression", 5, gen()) - x).abs().mean() > (corrupt(x, "jpeg_compression", 1, gen()) - x).abs().mean()


def test_weather_brightens_and_spatter_is_local() -> None:
    x = natural()
    for name in ("snow", "frost", "fog"):
        assert corrupt(x, name, 5, gen()).mean() > x.mean() - 0.1
    assert corrupt(x, "snow", 5, gen()).mean() > x.mean() + 0.05
    changed = (corrupt(x, "spatter", 5, gen()) != x).any(dim=1).float().mean()
    assert 0.005 < changed < 0.5  # mud drops, not a veil


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "contrast",
                                  "brightness", "gaussian_blur", "defocus_blur", "zoom_blur", "pixelate", "fog"])
def test_monotone_in_severity(name: str) -> None:
    x = natural()
    distance = [(corrupt(x, name, s, gen(1)) - x).abs().mean().item() for s in range(1, 6)]
    assert distance == sorted(distance) and distance[0] < distance[-1]


# ---------------------------------------------------------------- agreement with the reference


def test_gaussian_blur_matches_scipy() -> None:
    x = natural(2)
    for severity in (1, 3, 5):
        sigma = SEVERITY_PARAMS["gaussian_blur"][severity - 1]
        expected = ndi.gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="nearest", truncate=4.0)
        np.testing.assert_allclose(corrupt(x, "gaussian_blur", severity, gen()).numpy(), expected, atol=1e-5)


def test_defocus_level_1_is_a_3x3_gaussian() -> None:
    """Radius 0.3 keeps one pixel of the disk, so the kernel is OpenCV's 3x3 Gaussian of sigma 0.4."""
    x = natural(2)
    taps = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * 0.4**2))
    taps /= taps.sum()
    expected = ndi.correlate1d(ndi.correlate1d(x.numpy(), taps, axis=2, mode="mirror"), taps, axis=3, mode="mirror")
    np.testing.assert_allclose(corrupt(x, "defocus_blur", 1, gen()).numpy(), expected, atol=1e-5)


def _clipped_zoom_scipy(img: np.ndarray, factor: float) -> np.ndarray:
    h = img.shape[0]
    crop = int(np.ceil(h / factor))
    top = (h - crop) // 2
    zoomed = ndi.zoom(img[top : top + crop, top : top + crop], (factor, factor, 1), order=1)
    trim = (zoomed.shape[0] - h) // 2
    return zoomed[trim : trim + h, trim : trim + h]


def test_zoom_blur_matches_scipy_zoom() -> None:
    x = natural(2)
    for severity in (1, 5):
        factors = np.arange(1, SEVERITY_PARAMS["zoom_blur"][severity - 1], 0.01)
        for image, out in zip(x.permute(0, 2, 3, 1).numpy(), corrupt(x, "zoom_blur", severity, gen())):
            expected = (image + sum(_clipped_zoom_scipy(image, z) for z in factors)) / (len(factors) + 1)
            np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_pixelate_matches_pillow_box_resize() -> None:
    x = natural(2)
    for severity in (1, 5):
        small = int(32 * SEVERITY_PARAMS["pixelate"][severity - 1])
        out = corrupt(x, "pixelate", severity, gen())
        for image, got in zip(x, out):
            for channel, got_channel in zip(image, got):
                pil = Image.fromarray(channel.numpy(), mode="F")
                expected = np.asarray(pil.resize((small, small), Image.BOX).resize((32, 32), Image.BOX))
                np.testing.assert_allclose(got_channel.numpy(), expected, atol=1e-5)


def test_jpeg_matches_pillow() -> None:
    x = natural(2)
    out = corrupt(x, "jpeg_compression", 5, gen())
    for image, got in zip(x, out):
        buffer = io.BytesIO()
        Image.fromarray((image * 255).round().byte().permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=40)
        expected = np.asarray(Image.open(buffer)) / 255
        np.testing.assert_allclose(got.permute(1, 2, 0).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("severity", [1, 5])
def test_brightness_and_saturate_match_an_hsv_round_trip(severity: int) -> None:
    x = natural(2, 16, 16)
    x[0, :, 0, :4] = torch.tensor([0.0, 0.4, 1.0, 0.7])  # grey pixels, including black and white
    shift = SEVERITY_PARAMS["brightness"][severity - 1]
    scale, offset = SEVERITY_PARAMS["saturate"][severity - 1]
    pixels = hsv(x)
    bright = [colorsys.hsv_to_rgb(h, s, min(v + shift, 1.0)) for h, s, v in pixels]
    saturated = [colorsys.hsv_to_rgb(h, min(max(s * scale + offset, 0.0), 1.0), v) for h, s, v in pixels]
    for name, expected in (("brightness", bright), ("saturate", saturated)):
        got = corrupt(x, name, severity, gen()).permute(0, 2, 3, 1).reshape(-1, 3).numpy()
        np.testing.assert_allclose(got, np.clip(expected, 0, 1), atol=1e-5)


def test_contrast_formula() -> None:
    x = natural(2)
    mean = x.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(corrupt(x, "contrast", 5, gen()), ((x - mean) * 0.15 + mean).clamp(0, 1), atol=1e-6)


def test_glass_level_1_copies_from_up_left_neighbours() -> None:
    """At level 1 the blur (sigma 0.05) is the identity, leaving the reference's in-effect copies:
    visited pixels (rows and columns 2..H-1) take themselves or an up/left neighbour; others stay."""
    x = noise_image(4)
    out = corrupt(x, "glass_blur", 1, gen())
    options = torch.stack([x, x.roll(1, 2), x.roll(1, 3), x.roll((1, 1), (2, 3))])
    took = (options == out).all(dim=2)  # [4 options, N, H, W]
    assert took[:, :, 2:, 2:].any(0).all()
    assert torch.equal(out[:, :, :2], x[:, :, :2]) and torch.equal(out[:, :, :, :2], x[:, :, :, :2])
    assert 0.7 < took[1:, :, 2:, 2:].any(0).float().mean() < 0.8  # moved unless dy = dx = 0 (prob. 1/4)


def test_motion_blur_is_a_one_sided_streak() -> None:
    """An impulse blurred at angle 0 spreads left, tap i at i pixels with ImageMagick's weights."""
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 16, 20] = 1.0
    out = C._motion_blur(x, 9, 2.5, torch.tensor([0.0]))[0, 0]
    weights = torch.exp(-torch.arange(19.0) ** 2 / (2 * 2.5**2))
    weights /= weights.sum()
    assert torch.allclose(out[16, 20 - 18 : 21].flip(0), weights, atol=1e-6)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-6) and (out[16] > 0).sum() == 19


def test_motion_blur_matches_a_per_pixel_loop() -> None:
    g = gen(4)
    x = torch.rand(6, 3, 18, 20, generator=g)
    angles = torch.rand(6, generator=g, dtype=torch.float64) * 270 - 135
    expected = torch.zeros_like(x)
    kernel = [math.exp(-(i**2) / (2 * 1.5**2)) for i in range(13)]
    for n, angle in enumerate(angles.tolist()):
        for i, weight in enumerate(kernel):
            dx = math.ceil(i * math.cos(math.radians(angle)) - 0.5)
            dy = math.ceil(i * math.sin(math.radians(angle)) - 0.5)
            rows = (torch.arange(18) + dy).clamp(0, 17)
            cols = (torch.arange(20) + dx).clamp(0, 19)
            expected[n] += weight / sum(kernel) * x[n][:, rows][:, :, cols]
    assert torch.allclose(C._motion_blur(x, 6, 1.5, angles), expected, atol=1e-6)


def test_plasma_fractal_is_normalised_per_image() -> None:
    maps = C._plasma_fractal(3, 32, 2.0, gen())
    assert maps.shape == (3, 32, 32)
    assert torch.equal(maps.amin(dim=(1, 2)), torch.zeros(3, dtype=maps.dtype))
    assert torch.allclose(maps.amax(dim=(1, 2)), torch.ones(3, dtype=maps.dtype))


def test_spatter_helpers_follow_opencv() -> None:
    step = torch.zeros(1, 1, 16, 16)
    step[..., 8:, :] = 200.0
    # a step: OpenCV keeps the upper (left) one of the two rows (columns) of equal magnitude
    for edges in (C._canny(step, 50, 150)[0, 0], C._canny(step.transpose(2, 3), 50, 150)[0, 0].T):
        assert edges[7].all() and edges.sum() == 16
    target = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    target[0, 0, 8, 8] = True
    dist = C._chamfer_distance(target, 20)[0, 0].double() / 2**16
    for (dy, dx), d in {(0, 1): 1.0, (1, 1): 1.4, (2, 1): 2.1969, (2, 2): 2.8, (0, 3): 3.0}.items():
        assert dist[8 + dy, 8 + dx].item() == pytest.approx(d, abs=1e-4)
    assert dist.max() < 20
    v = torch.tensor([[0.0, 0.0, 5.0, 9.0]]).view(1, 1, 2, 2)
    assert C._equalize_hist(v).flatten().tolist() == [0.0, 0.0, 128.0, 255.0]  # round(255 * (cdf - 2) / 2)
    assert torch.equal(C._equalize_hist(torch.full((1, 1, 2, 2), 7.0)), torch.full((1, 1, 2, 2), 7.0))


@pytest.mark.parametrize("op, args", [(C._gaussian_filter, (0.7, 4.0, "nearest")), (C._defocus, (1.5, 0.1)),
                                      (C._zoom_average, ((1.0, 1.1, 1.2),)), (C._pixelate_op, (0.65,)),
                                      (C._gaussian_filter, (6.4, 3.0, "reflect"))])
def test_matrix_form_equals_the_direct_op(op: object, args: tuple) -> None:
    x = natural(3)
    assert torch.allclose(C._linear(op, x, *args), op(x, *args), atol=1e-5)  # type: ignore[operator]
