"""Differentiable Siamese augmentation (DSA, Zhao & Bilen 2021).

One op is picked per call from a strategy such as "color_crop_cutout_scale_rotate" and its
parameters are drawn once, then shared by every sample of every batch it is applied to, so the
real and the synthetic batch see exactly the same transformation. Every op is differentiable
with respect to the images. Randomness comes only from an explicit CPU `torch.Generator`.
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


@dataclass(frozen=True)
class AugParams:
    op: str  # the op group chosen ("color", "crop", ..., or "none")
    values: dict[str, torch.Tensor]  # the drawn parameters (scalars, CPU tensors)


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


def _uniform(generator: torch.Generator, low: float, high: float) -> torch.Tensor:
    """One scalar drawn from U(low, high), on the CPU."""
    return low + (high - low) * torch.rand((), generator=generator)


def _sample_op(op: str, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Draw the parameters of one op; positions and shifts are fractions of the image size."""
    if op == "color":
        return {"brightness": _uniform(g, -0.5, 0.5), "saturation": _uniform(g, 0.0, 2.0),
                "contrast": _uniform(g, 0.5, 1.5)}
    if op == "crop":
        return {"dx": _uniform(g, -CROP, CROP), "dy": _uniform(g, -CROP, CROP)}
    if op == "cutout":
        return {"cx": _uniform(g, 0.0, 1.0), "cy": _uniform(g, 0.0, 1.0)}
    if op == "flip":
        return {"flip": torch.rand((), generator=g) < 0.5}
    if op == "scale":
        return {"sx": _uniform(g, 1 / SCALE, SCALE), "sy": _uniform(g, 1 / SCALE, SCALE)}
    return {"degrees": _uniform(g, -ROTATE_DEGREES, ROTATE_DEGREES)}  # rotate


def sample_params(strategy: str, generator: torch.Generator) -> AugParams:
    """Pick one op of `strategy` uniformly at random and draw its parameters."""
    ops = parse_strategy(strategy)
    if not ops:
        return AugParams("none", {})
    op = ops[int(torch.randint(len(ops), (), generator=generator))]
    return AugParams(op, _sample_op(op, generator))


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample x [B, C, H, W] through the 2x3 affine map theta, shared by the whole batch."""
    theta = theta.to(device=x.device, dtype=x.dtype).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def _scale(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
    zero = torch.zeros(())
    return _affine(x, torch.stack([v["sx"], zero, zero, zero, v["sy"], zero]).view(1, 2, 3))


def _rotate(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
    a, zero = torch.deg2rad(v["degrees"]), torch.zeros(())
    theta = torch.stack([a.cos(), a.sin(), zero, -a.sin(), a.cos(), zero]).view(1, 2, 3)
    return _affine(x, theta)


def crop_pixels(fraction: torch.Tensor, size: int) -> int:
    """A shift drawn in [-CROP, CROP] -> whole pixels, uniform over -m..m with m = round(CROP * size)
    like the reference (rounding fraction * size instead would halve the odds of the extremes)."""
    m = int(CROP * size + 0.5)
    return min(int((fraction / CROP + 1) / 2 * (2 * m + 1)), 2 * m) - m


def _crop(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
    """Translate by (dx, dy) whole pixels; the uncovered border is zero."""
    h, w = x.shape[-2:]
    dx, dy = crop_pixels(v["dx"], w), crop_pixels(v["dy"], h)
    p = max(abs(dx), abs(dy))
    return F.pad(x, (p, p, p, p))[..., p - dy : p - dy + h, p - dx : p - dx + w]


def _cutout(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
    """Zero a square of side CUTOUT * size centred at (cx, cy), clipped at the border."""
    h, w = x.shape[-2:]

    def keep(centre: torch.Tensor, size: int) -> torch.Tensor:
        side = int(CUTOUT * size + 0.5)
        start = min(int(centre * size), size - 1) - side // 2
        idx = torch.arange(size, device=x.device)
        return (idx < start) | (idx >= start + side)

    mask = keep(v["cy"], h)[:, None] | keep(v["cx"], w)[None, :]
    return x * mask.to(x.dtype)


def _flip(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
    return x.flip(-1) if bool(v["flip"]) else x


def _color(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
    """Brightness, then saturation (around the per-pixel channel mean), then contrast (around the
    per-image mean). No clamping: the images are normalised, not in [0, 1]."""
    x = x + float(v["brightness"])
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * float(v["saturation"]) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * float(v["contrast"]) + mean


_APPLY: dict[str, Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]] = {
    "color": _color, "crop": _crop, "cutout": _cutout, "flip": _flip, "scale": _scale, "rotate": _rotate,
}


def apply(x: torch.Tensor, params: AugParams) -> torch.Tensor:
    """Apply drawn params to x [B, C, H, W] -> [B, C, H, W]; deterministic and differentiable."""
    return x if params.op == "none" else _APPLY[params.op](x, params.values)


def augment(x: torch.Tensor, strategy: str, generator: torch.Generator) -> torch.Tensor:
    """x [B, C, H, W] -> [B, C, H, W] under one fresh draw from `strategy`."""
    return apply(x, sample_params(strategy, generator))


def siamese(batches: Sequence[torch.Tensor], strategy: str, generator: torch.Generator) -> list[torch.Tensor]:
    """One draw applied to every batch (e.g. [real [B1, C, H, W], synthetic [B2, C, H, W]])."""
    params = sample_params(strategy, generator)
    return [apply(x, params) for x in batches]
