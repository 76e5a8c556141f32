"""Differentiable Siamese augmentation (DSA, Zhao & Bilen 2021), per sample or shared.

Each call picks one op group from a strategy such as "color_crop_cutout_scale_rotate" and draws
its parameters `n` times: once per image (`augment`: evaluation, surrogate views, DC's inner loop,
MTT's student and experts, as the reference draws them) or once for a whole set of batches
(`siamese`: the real and synthetic batch of a matching step see exactly the same transformation).
DM draws per class (`sample_params(..., n=C).repeat(rows_per_class)`). Every op is
differentiable with respect to the images.

Parameters come only from an explicit CPU `torch.Generator`, so a seed gives the same
augmentation on any device; on CUDA they travel in one non-blocking copy from pinned memory, so
augmenting never makes the host wait for the GPU.
"""

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ddcore.errors import ConfigError

VALID_OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
SCALE = 1.2  # scale factors in [1/SCALE, SCALE]
ROTATE_DEGREES = 15.0  # angles in [-15, 15] degrees
CROP = 0.125  # shifts of up to this fraction of the size
CUTOUT = 0.5  # side of the zeroed square, as a fraction of the size

# each op's parameters and the interval each is drawn from (positions are fractions of the size)
_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "color": {"brightness": (-0.5, 0.5), "saturation": (0.0, 2.0), "contrast": (0.5, 1.5)},
    "crop": {"dx": (-CROP, CROP), "dy": (-CROP, CROP)},
    "cutout": {"cx": (0.0, 1.0), "cy": (0.0, 1.0)},
    "flip": {"flip": (0.0, 1.0)},  # flipped where the draw is below 0.5
    "scale": {"sx": (1 / SCALE, SCALE), "sy": (1 / SCALE, SCALE)},
    "rotate": {"degrees": (-ROTATE_DEGREES, ROTATE_DEGREES)},
}


@dataclass(frozen=True)
class AugParams:
    op: str  # the op group chosen ("color", "crop", ..., or "none")
    values: dict[str, torch.Tensor]  # name -> CPU float tensor [n]: n = 1 shared by every image, else one per image

    def repeat(self, times: int) -> "AugParams":
        """Each draw repeated `times` times in a row: per-class draws -> per-image values of a
        class-major batch with `times` images per class."""
        return AugParams(self.op, {k: v.repeat_interleave(times) for k, v in self.values.items()})

    def rows(self, part: slice) -> "AugParams":
        """The values of images `part` of a batch with one draw per image (shared draws stay shared)."""
        return AugParams(self.op, {k: v if len(v) == 1 else v[part] for k, v in self.values.items()})


def parse_strategy(strategy: str) -> tuple[str, ...]:
    """'color_crop' -> ('color', 'crop'); '' and 'none' -> (). Raises ConfigError (a ValueError)."""
    if strategy in ("", "none"):
        return ()
    ops = tuple(strategy.split("_"))
    unknown = [op for op in ops if op not in VALID_OPS]
    if unknown:
        raise ConfigError(
            f"unknown augmentation op(s) {', '.join(repr(op) for op in unknown)} in strategy "
            f"{strategy!r}; valid ops are {', '.join(VALID_OPS)} (joined by '_'), or 'none'"
        )
    return ops


def sample_params(strategy: str, generator: torch.Generator, n: int = 1) -> AugParams:
    """Pick one op of `strategy` uniformly at random and draw its parameters n times."""
    ops = parse_strategy(strategy)
    if not ops:
        return AugParams("none", {})
    op = ops[int(torch.randint(len(ops), (), generator=generator))]
    return AugParams(op, {name: low + (high - low) * torch.rand(n, generator=generator)
                          for name, (low, high) in _RANGES[op].items()})


def _on(x: torch.Tensor, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The parameters (float32) on x's device, each [n, 1, 1, 1] so it broadcasts over images."""
    packed = torch.stack(list(values.values()))
    if x.is_cuda:
        packed = packed.pin_memory().to(x.device, non_blocking=True)
    return dict(zip(values, packed.view(len(values), -1, 1, 1, 1)))


def shift_pixels(fraction: torch.Tensor, size: int) -> torch.Tensor:
    """Shifts drawn in [-CROP, CROP] -> whole pixels, uniform over -m..m with m = round(CROP * size)
    like the reference (rounding fraction * size instead would halve the odds of the extremes)."""
    m = int(CROP * size + 0.5)
    return ((fraction / CROP + 1) / 2 * (2 * m + 1)).long().clamp(max=2 * m) - m


def _crop(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
    """Translate each image by its (dx, dy) whole pixels; the uncovered border is zero."""
    b, _, h, w = x.shape
    dx, dy = shift_pixels(v["dx"].view(-1), w), shift_pixels(v["dy"].view(-1), h)
    m = max(int(CROP * h + 0.5), int(CROP * w + 0.5))
    rows = torch.arange(h, device=x.device) + m - dy[:, None]  # [n, h]: the padded row each output row reads
    cols = torch.arange(w, device=x.device) + m - dx[:, None]
    image = torch.arange(b, device=x.device)[:, None, None]
    padded = F.pad(x, (m, m, m, m))
    # the gather yields [b, h, w, c]; permuted back it is channels_last in memory, and a conv fed
    # that keeps the layout, sending GroupNorm down a kernel ~5x slower on CPUs: copy to NCHW
    return padded[image, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def _cutout(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
    """Zero a square of side CUTOUT * size centred at each image's (cx, cy), clipped at the border."""
    h, w = x.shape[-2:]

    def keep(centre: torch.Tensor, size: int) -> torch.Tensor:  # [n, size]: outside the square
        side = int(CUTOUT * size + 0.5)
        start = (centre.view(-1, 1) * size).long().clamp(max=size - 1) - side // 2
        idx = torch.arange(size, device=x.device)
        return (idx < start) | (idx >= start + side)

    mask = keep(v["cy"], h)[:, :, None] | keep(v["cx"], w)[:, None, :]
    return x * mask[:, None].to(x.dtype)


def _flip(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.where(v["flip"] < 0.5, x.flip(-1), x)


def _color(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
    """Brightness, then saturation (around the per-pixel channel mean), then contrast (around the
    per-image mean). No clamping: the images are normalised, not in [0, 1]."""
    x = x + v["brightness"]
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * v["saturation"] + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * v["contrast"] + mean


def _affine(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Resample each image through the linear map [[a, b], [c, d]] (each [n, 1, 1, 1]) about its centre."""
    zero = torch.zeros_like(a)
    theta = torch.cat([a, b, zero, c, d, zero], dim=1).view(-1, 2, 3).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # the reference's convention
    return F.grid_sample(x, grid, align_corners=False)


def _scale(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
    zero = torch.zeros_like(v["sx"])
    return _affine(x, v["sx"], zero, zero, v["sy"])


def _rotate(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
    angle = torch.deg2rad(v["degrees"])
    return _affine(x, angle.cos(), angle.sin(), -angle.sin(), angle.cos())


_APPLY: dict[str, Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]] = {
    "color": _color, "crop": _crop, "cutout": _cutout, "flip": _flip, "scale": _scale, "rotate": _rotate,
}


def apply(x: torch.Tensor, params: AugParams) -> torch.Tensor:
    """Apply drawn params to x [B, C, H, W] -> [B, C, H, W] (n = 1 or B draws); deterministic and
    differentiable."""
    return x if params.op == "none" else _APPLY[params.op](x, _on(x, params.values))


def augment(x: torch.Tensor, strategy: str, generator: torch.Generator) -> torch.Tensor:
    """x [B, C, H, W] -> [B, C, H, W], each image under its own draw from `strategy`."""
    return apply(x, sample_params(strategy, generator, len(x)))


def siamese(batches: Sequence[torch.Tensor], strategy: str, generator: torch.Generator) -> list[torch.Tensor]:
    """One draw applied to every image of every batch (e.g. [real [B1, C, H, W], synthetic [B2, C, H, W]])."""
    params = sample_params(strategy, generator)
    return [apply(x, params) for x in batches]
