"""The 2-D map of a run: UMAP of the real samples' surrogate embeddings, synthetic images placed in it.

Exact k-nearest neighbours come from torch (chunked) and are handed to UMAP as `precomputed_knn`:
that skips NN-descent, whose numba JIT costs ~25 s in every fresh process. Synthetic images are
placed at the inverse-distance-weighted mean of their nearest real samples' map positions (the
same initialisation UMAP's own `transform` uses), which keeps them where their neighbours are and
costs nothing. A layout depends only on the real features and the UMAP settings, so a cache folder
keeps it: the vanilla and reweighted run of a pair (one surrogate) draw the same map once.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .records import atomic_write

if TYPE_CHECKING:
    import scipy.sparse


def knn(queries: torch.Tensor, points: torch.Tensor, k: int, exclude_self: bool = False,
        chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean k nearest `points` of each query: (distances [Q, k], indices [Q, k]), ascending.
    With exclude_self, queries are the points themselves and each one's own index comes first
    (UMAP's convention for precomputed neighbours)."""
    dists, idxs = [], []
    points = points.float()
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk].float()
        d = torch.cdist(q, points)
        _, ii = d.topk(min(k, len(points)), dim=1, largest=False)
        # cdist's matmul shortcut is off by ~1e-3; recompute the k kept distances exactly
        dd, order = (q[:, None, :] - points[ii]).norm(dim=-1).sort(dim=1)
        ii = ii.gather(1, order)
        if exclude_self:
            self_idx = torch.arange(start, start + len(q), device=q.device)
            dd, ii = dd.clone(), ii.clone()
            dd[:, 0], ii[:, 0] = 0.0, self_idx  # ties at distance 0 must still list self first
        dists.append(dd)
        idxs.append(ii)
    return torch.cat(dists), torch.cat(idxs)


def stratified_subset(labels: torch.Tensor, limit: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted indices of at most `limit` samples, the same share from every class."""
    if len(labels) <= limit:
        return torch.arange(len(labels))
    keep = []
    classes = labels.unique()
    per_class = limit // len(classes)
    for c in classes:
        idx = (labels == c).nonzero().squeeze(1)
        keep.append(idx[torch.randperm(len(idx), generator=generator)[:per_class]])
    return torch.cat(keep).sort().values


def fuzzy_graph(dist: np.ndarray, idx: np.ndarray, n_iter: int = 64) -> scipy.sparse.csr_matrix:
    """UMAP's fuzzy simplicial set (McInnes et al. 2018, section 3.1) from exact kNN distances and
    indices [N, k] whose first column is each point itself, as umap-learn computes it with its
    defaults (local connectivity 1, set_op_mix_ratio 1), vectorised in numpy: umap-learn's own
    `smooth_knn_dist` and `compute_membership_strengths` are parallel numba functions whose
    compilation took ~7 s in every fresh process (a worker's start, every CLI run's map).
    Each point i gets rho_i (its nearest non-zero distance) and sigma_i (binary search until
    sum_j exp(-max(0, d_ij - rho_i) / sigma_i) = log2 k); memberships exp(-(d_ij - rho_i) / sigma_i)
    (1 within rho_i, 0 for i itself), then the fuzzy union A + A^T - A * A^T."""
    import scipy.sparse

    n, k = dist.shape
    dist = dist.astype(np.float32)
    positive = np.where(dist > 0, dist, np.inf)
    rho = positive.min(axis=1)
    rho[~np.isfinite(rho)] = 0.0  # no non-zero distance: every neighbour sits on the point
    excess = np.maximum(dist[:, 1:] - rho[:, None], 0.0)  # the first column (the point) is left out
    target = np.log2(k)
    lo, hi, mid = np.zeros(n), np.full(n, np.inf), np.ones(n)
    active = np.ones(n, dtype=bool)
    for _ in range(n_iter):  # umap-learn's search: halve the interval, or double until bounded
        psum = np.exp(-excess / mid[:, None]).sum(axis=1)
        active &= np.abs(psum - target) >= 1e-5  # SMOOTH_K_TOLERANCE: a row that met it stays
        above = active & (psum > target)
        below = active & ~above
        hi = np.where(above, mid, hi)
        lo = np.where(below, mid, lo)
        mid = np.where(above | (below & np.isfinite(hi)), (lo + hi) / 2, np.where(below, mid * 2, mid))
        if not active.any():
            break
    floor = 1e-3 * np.where(rho > 0, dist.mean(axis=1), dist.mean())  # MIN_K_DIST_SCALE
    sigma = np.maximum(mid, floor).astype(np.float32)
    vals = np.exp(-np.maximum(dist - rho[:, None], 0.0) / np.maximum(sigma, np.finfo(np.float32).tiny)[:, None])
    vals[idx == np.arange(n)[:, None]] = 0.0
    graph = scipy.sparse.coo_matrix((vals.astype(np.float32).ravel(), (np.repeat(np.arange(n), k), idx.ravel())),
                                    shape=(n, n)).tocsr()
    graph.eliminate_zeros()
    transpose = graph.transpose()
    return (graph + transpose - graph.multiply(transpose)).tocsr()


def fit_map(features: torch.Tensor, neighbors: int, min_dist: float, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    """features [N, d] -> (2-D map [N, 2] float32, the kNN indices used [N, k]): umap-learn's layout
    (`simplicial_set_embedding` with UMAP's defaults: spectral start, 500 epochs up to 10,000
    points) of the fuzzy graph of the exact kNN (`fuzzy_graph`)."""
    # heavy imports (numba): only the stages that draw a map pay for them
    from sklearn.utils import check_random_state
    from umap import umap_

    k = min(neighbors, len(features) - 1)
    dist, idx = knn(features, features, k + 1, exclude_self=True)
    graph = fuzzy_graph(dist.cpu().numpy(), idx.cpu().numpy())
    a, b = umap_.find_ab_params(1.0, min_dist)
    threads = torch.get_num_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coords, _ = umap_.simplicial_set_embedding(
            features.cpu().numpy(), graph, n_components=2, initial_alpha=1.0, a=a, b=b, gamma=1.0,
            negative_sample_rate=5, n_epochs=None, init="spectral", random_state=check_random_state(seed),
            metric="euclidean", metric_kwds={}, densmap=False, densmap_kwds={}, output_dens=False)
    # numba's first parallel call sets the process's OpenMP thread count, which torch shares:
    # later stages (and runs, in a worker) keep the count they were given, so results do not move
    torch.set_num_threads(threads)
    return coords.astype(np.float32), idx


def cached_map(features: torch.Tensor, neighbors: int, min_dist: float, seed: int, cache_dir: Path) -> np.ndarray:
    """`fit_map`'s 2-D map [N, 2], kept in `cache_dir` as map-<key>.npy (key: the features' bytes,
    the settings and UMAP's version); an unreadable or malformed entry is computed again."""
    import umap

    data = features.detach().cpu().float().contiguous().numpy()
    key = hashlib.sha256(data.tobytes())
    key.update(f"{data.shape}|{neighbors}|{min_dist!r}|{seed}|{umap.__version__}".encode())
    path = Path(cache_dir) / f"map-{key.hexdigest()[:16]}.npy"
    try:
        coords = np.load(path, allow_pickle=False)
        if coords.shape == (len(data), 2) and coords.dtype == np.float32 and np.isfinite(coords).all():
            return coords
    except (OSError, ValueError):
        pass  # missing or damaged: computed again below
    coords, _ = fit_map(features, neighbors, min_dist, seed)
    buf = io.BytesIO()
    np.save(buf, coords, allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return coords


def place(queries: torch.Tensor, features: torch.Tensor, coords: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Put each query [Q, d] into the map: (positions [Q, 2], its k nearest real rows [Q, k])."""
    dist, idx = knn(queries, features, k)
    w = 1.0 / (dist.cpu().numpy() + 1e-6)
    w /= w.sum(axis=1, keepdims=True)
    positions = (coords[idx.cpu().numpy()] * w[..., None]).sum(axis=1)
    return positions.astype(np.float32), idx.cpu().numpy()
