import numpy as np
import torch

from ddcore import embedmap


def test_knn_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(50, 3, generator=g)
    q = torch.randn(7, 3, generator=g)
    dist, idx = embedmap.knn(q, pts, 4, chunk=3)
    full = torch.cdist(q, pts)
    expected = full.argsort(dim=1)[:, :4]
    assert (idx == expected).all()
    torch.testing.assert_close(dist, full.gather(1, expected))


def test_knn_self_first():
    pts = torch.randn(20, 2)
    dist, idx = embedmap.knn(pts, pts, 3, exclude_self=True)
    assert (idx[:, 0] == torch.arange(20)).all() and (dist[:, 0] == 0).all()


def test_place_puts_a_copy_of_a_real_point_on_it():
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        feats = torch.randn(3000, 16, generator=g)  # large enough for cdist's matmul shortcut
        coords = np.random.default_rng(seed).random((3000, 2)).astype(np.float32)
        pos, nn = embedmap.place(feats[[5, 9]], feats, coords, k=5)
        assert nn[:, 0].tolist() == [5, 9]
        np.testing.assert_allclose(pos, coords[[5, 9]], atol=1e-4)


def test_stratified_subset():
    labels = torch.arange(4).repeat_interleave(100)
    keep = embedmap.stratified_subset(labels, 40, torch.Generator().manual_seed(0))
    assert len(keep) == 40 and torch.bincount(labels[keep]).tolist() == [10, 10, 10, 10]
    assert (keep.diff() > 0).all()
    assert len(embedmap.stratified_subset(labels, 1000, torch.Generator())) == 400


def test_fit_map_separates_clusters():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(60, 5, generator=g) * 0.05
    b = torch.randn(60, 5, generator=g) * 0.05 + 3
    coords, idx = embedmap.fit_map(torch.cat([a, b]), 10, 0.1, seed=0)
    assert coords.shape == (120, 2) and np.isfinite(coords).all()
    ca, cb = coords[:60].mean(0), coords[60:].mean(0)
    spread = max(coords[:60].std(0).max(), coords[60:].std(0).max())
    assert np.linalg.norm(ca - cb) > 3 * spread


def test_a_map_leaves_torchs_thread_count_alone():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        embedmap.fit_map(torch.rand(60, 8, generator=torch.Generator().manual_seed(0)), 5, 0.1, 0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_map_is_computed_once_per_features_and_settings(tmp_path, monkeypatch):
    features = torch.rand(50, 6, generator=torch.Generator().manual_seed(1))
    first = embedmap.cached_map(features, 5, 0.1, 0, tmp_path)
    [entry] = list(tmp_path.iterdir())
    assert entry.name.startswith("map-") and entry.suffix == ".npy"

    fits = []
    real_fit = embedmap.fit_map
    monkeypatch.setattr(embedmap, "fit_map", lambda *a: fits.append(a) or real_fit(*a))
    np.testing.assert_array_equal(embedmap.cached_map(features.clone(), 5, 0.1, 0, tmp_path), first)
    assert fits == []  # read back, not fitted
    embedmap.cached_map(features, 5, 0.1, 1, tmp_path)  # another seed is another map
    assert len(fits) == 1 and len(list(tmp_path.iterdir())) == 2

    entry.write_bytes(b"not a numpy file")  # damaged: fitted again and rewritten
    np.testing.assert_array_equal(embedmap.cached_map(features, 5, 0.1, 0, tmp_path), first)
    assert len(fits) == 2 and np.load(entry).shape == (50, 2)


def test_fuzzy_graph_is_umap_learns_fuzzy_simplicial_set():
    import umap.umap_ as umap_

    features = torch.randn(300, 8, generator=torch.Generator().manual_seed(3))
    features[:5] = features[0]  # duplicates: zero distances besides each point's own
    dist, idx = embedmap.knn(features, features, 11, exclude_self=True)
    ours = embedmap.fuzzy_graph(dist.numpy(), idx.numpy())
    theirs, _, _ = umap_.fuzzy_simplicial_set(features.numpy(), 11, 0, "euclidean",
                                              knn_indices=idx.numpy(), knn_dists=dist.numpy())
    assert ours.shape == theirs.shape and ours.nnz == theirs.nnz
    assert abs(ours - theirs.tocsr()).max() < 1e-6
