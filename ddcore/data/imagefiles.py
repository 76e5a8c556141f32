"""Reading folders of image files (BFFHQ, the user's CSV datasets): one image at a time, and every
problem collected into one error that lists them all, so a user fixes the data in one pass."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..errors import DatasetError

# what PIL raises for a missing, truncated, unrecognised or absurdly large file
READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
SHOWN = 10  # problems spelled out in a message; the rest are counted


def image_size_of(path: str) -> tuple[int, int]:
    """(H, W) from the file's header, without decoding the pixels; raises one of READ_ERRORS."""
    with Image.open(path) as im:
        width, height = im.size
    return height, width


def read_rgb(path: str, size: int | None) -> torch.Tensor:
    """The image at `path` as uint8 [3, H, W] RGB, resized to size x size (bilinear, which
    antialiases when shrinking) when `size` is given; raises one of READ_ERRORS."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)


class Problems:
    """Collects what is wrong with individual rows or files (`add(where, what)`), then raises one
    DatasetError listing the first SHOWN of them and counting the rest."""

    def __init__(self, subject: str, unit: str) -> None:
        self.subject, self.unit = subject, unit  # e.g. "/data/faces.csv", "rows"
        self.items: list[tuple[str, str]] = []

    def add(self, where: str, what: str) -> None:
        self.items.append((where, what))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self, fix: str) -> None:
        if not self.items:
            return
        shown = "; ".join(f"{where}: {what}" for where, what in self.items[:SHOWN])
        more = f"; and {len(self.items) - SHOWN} more" if len(self.items) > SHOWN else ""
        raise DatasetError(f"{self.subject} has {len(self.items)} bad {self.unit}: {shown}{more}; {fix}")
