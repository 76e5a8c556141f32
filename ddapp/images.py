"""Image helpers: tensors in [0, 1] to display-ready uint8 arrays, per-class grids, PNG bytes."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float [N, 3, H, W] in [0, 1] (or one [3, H, W]) -> uint8 [N, H, W, 3] (or [H, W, 3])."""
    arr = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    return (arr * 255.0).round().astype(np.uint8).transpose(*range(arr.ndim - 3), -2, -1, -3)


def enlarge(image: np.ndarray, scale: int) -> Image.Image:
    """uint8 [H, W, 3] -> PIL image `scale` times larger with nearest-neighbour pixels, so a
    28x28 digit stays crisp instead of being blurred by the browser's resampling."""
    return Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)


def tile(images: np.ndarray, ncol: int, pad: int = 2) -> np.ndarray:
    """uint8 [N, H, W, 3] -> one uint8 image with `ncol` images per row on a white background.
    Empty slots (N not a multiple of ncol) stay white."""
    n, h, w, _ = images.shape
    nrow = max(1, -(-n // ncol))
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        top, left = pad + (i // ncol) * (h + pad), pad + (i % ncol) * (w + pad)
        out[top : top + h, left : left + w] = img
    return out


def class_rows(images: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int) -> np.ndarray:
    """uint8 [N, H, W, 3] -> a grid with one row per class 0..num_classes-1 holding the first
    `per_class` images of that class (white where a class has fewer)."""
    _, h, w, _ = images.shape
    slots = np.full((num_classes * per_class, h, w, 3), 255, dtype=np.uint8)
    for c in range(num_classes):
        rows = np.flatnonzero(labels == c)[:per_class]
        slots[c * per_class : c * per_class + len(rows)] = images[rows]
    return tile(slots, per_class)


def fit_scale(width_px: int, target_px: int = 900, max_scale: int = 6) -> int:
    """The largest integer upscale (1..max_scale) that keeps an image about `target_px` wide."""
    return int(np.clip(target_px // max(width_px, 1), 1, max_scale))


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
