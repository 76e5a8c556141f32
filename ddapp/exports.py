"""A run's embeddings as files for TensorBoard's Embedding Projector.

The projector export is a zip holding one folder with the four files the projector reads
(tensorboard/plugins/projector: projector_config.proto, and its TSV and sprite readers):
    tensors.tsv              one point per line, its features tab-separated (no header)
    metadata.tsv             a header line, then one tab-separated line per point, in tensors.tsv's order
    sprite.png               every point's thumbnail in a square grid, row by row, at most 8192 px a side
    projector_config.pbtxt   a ProjectorConfig (text protobuf) naming the three files by relative path
Unzip it and run `tensorboard --logdir FOLDER`: the projector reads a config in the logdir itself.
"""
from __future__ import annotations

import io
import math
import zipfile

import numpy as np
from PIL import Image

from ddcore.records import EmbeddingMap

from .figures import REAL, SYNTHETIC, relative_weight
from .images import png_bytes

MAX_SPRITE_PX = 8192  # the projector refuses a larger sprite image
PROJECTOR_FILES = ("tensors.tsv", "metadata.tsv", "sprite.png", "projector_config.pbtxt")
METADATA_COLUMNS = ("kind", "index", "class", "bias value", "conflicting", "log density", "weight x uniform")


def _cell(value: object) -> str:
    """A metadata value: tabs and newlines would break the TSV, so they become spaces."""
    if isinstance(value, float | np.floating):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return " ".join(str(value).split())


def _metadata(emb: EmbeddingMap) -> str:
    rel, odd = relative_weight(emb), emb.conflicting()
    lines = ["\t".join(METADATA_COLUMNS)]
    for i in range(len(emb.real_label)):
        values = (REAL, int(emb.real_index[i]), emb.classes[emb.real_label[i]], emb.bias_values[emb.real_bias[i]],
                  "yes" if odd[i] else "no", float(emb.real_log_density[i]), float(rel[i]))
        lines.append("\t".join(_cell(v) for v in values))
    for j in range(len(emb.syn_label)):
        values = (SYNTHETIC, j, emb.classes[emb.syn_label[j]], "", "", float(emb.syn_log_density[j]), "")
        lines.append("\t".join(_cell(v) for v in values))
    return "\n".join(lines) + "\n"


def _tensors(features: np.ndarray) -> str:
    return "\n".join("\t".join(f"{v:.6g}" for v in row) for row in features.tolist()) + "\n"


def sprite(thumbs: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """uint8 [N, h, w, 3] -> (sprite image, (width, height) of one cell): a square grid of
    ceil(sqrt(N)) cells a side, filled row by row, shrunk if it would pass MAX_SPRITE_PX."""
    n, h, w, _ = thumbs.shape
    side = math.ceil(math.sqrt(n))
    scale = min(1.0, MAX_SPRITE_PX / (side * max(h, w)))
    if scale < 1.0:
        h, w = max(1, int(h * scale)), max(1, int(w * scale))
        thumbs = np.stack([np.asarray(Image.fromarray(t).resize((w, h), Image.BILINEAR)) for t in thumbs])
    out = np.zeros((side * h, side * w, 3), dtype=np.uint8)
    for i, t in enumerate(thumbs):
        r, c = divmod(i, side)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = t
    return out, (w, h)


def projector_config(name: str, shape: tuple[int, int], cell: tuple[int, int] | None) -> str:
    """The ProjectorConfig text protobuf for the files above (`cell`: a sprite cell's (width,
    height), None without a sprite)."""
    lines = ["embeddings {", f'  tensor_name: "{name}"', '  tensor_path: "tensors.tsv"',
             '  metadata_path: "metadata.tsv"', f"  tensor_shape: {shape[0]}", f"  tensor_shape: {shape[1]}"]
    if cell is not None:
        lines += ["  sprite {", '    image_path: "sprite.png"', f"    single_image_dim: {cell[0]}",
                  f"    single_image_dim: {cell[1]}", "  }"]
    return "\n".join([*lines, "}", ""])


def projector_zip(emb: EmbeddingMap, syn_thumbs: np.ndarray | None, folder: str) -> bytes:
    """The mapped real samples and the synthetic images (same surrogate features) as a zip of
    `folder`/ with PROJECTOR_FILES. Without thumbnails (old maps, or synthetic images of another
    size) the sprite is left out of the folder and the config."""
    features = np.concatenate([emb.real_features, emb.syn_features]).astype(np.float32)
    files = {"tensors.tsv": _tensors(features).encode(), "metadata.tsv": _metadata(emb).encode()}
    cell = None
    if emb.real_thumbs is not None and syn_thumbs is not None and syn_thumbs.shape[1:] == emb.real_thumbs.shape[1:]:
        image, cell = sprite(np.concatenate([emb.real_thumbs, syn_thumbs]))
        files["sprite.png"] = png_bytes(image)
    name = "".join(ch for ch in folder if ch.isalnum() or ch in "-_.") or "embeddings"
    files["projector_config.pbtxt"] = projector_config(name, features.shape, cell).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for file_name, data in files.items():
            z.writestr(f"{folder}/{file_name}", data)
    return buf.getvalue()
