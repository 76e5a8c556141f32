import pytest
import torch

from ddcore.config import preset
from ddcore.data import BiasedTensors
from ddcore.density import uniform_weights
from ddcore.errors import Cancelled, DivergedError
from ddcore.methods import DistillJob, get_method
from ddcore.methods.dm import dm_loss
from ddcore.methods.sampling import RealSampler, class_table, init_synthetic, sample_positions


def tiny_data(n_per_class=12, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    images = torch.rand(len(labels), 3, 8, 8, generator=g)
    return BiasedTensors(images, labels, labels.clone(), classes)


def test_dm_loss_matches_hand_computation():
    real = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [2.0, 2.0]]])  # [C=2, B=2, d=2]
    coef = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    syn = torch.tensor([[[1.0, 1.0]], [[1.0, 3.0]]])  # [C=2, IPC=1, d=2]
    # class 0: weighted mean (2.5, 3.5) - (1, 1) -> 1.5^2 + 2.5^2 = 8.5
    # class 1: mean (1, 1) - (1, 3) -> 0 + 4 = 4
    assert dm_loss(real, coef, syn).item() == pytest.approx(12.5)


def test_uniform_weights_equal_the_plain_mean():
    g = torch.Generator().manual_seed(0)
    real, syn = torch.randn(3, 5, 4, generator=g), torch.randn(3, 2, 4, generator=g)
    uniform = torch.full((3, 5), 0.2)
    plain = (real.mean(1) - syn.mean(1)).pow(2).sum()
    torch.testing.assert_close(dm_loss(real, uniform, syn), plain)


def test_class_table_and_sampling():
    data = tiny_data()
    w = uniform_weights(data.labels)
    table, tw = class_table(data.labels, w, 3)
    assert table.shape == (3, 12) and (data.labels[table] == torch.arange(3)[:, None]).all()
    g = torch.Generator().manual_seed(0)
    pos = sample_positions(tw, 5, with_weights=False, generator=g)
    assert pos.shape == (3, 5) and all(len(set(row.tolist())) == 5 for row in pos)  # no repeats
    # weighted sampling follows the weights: all mass on one sample -> always that sample
    skew = torch.zeros_like(tw)
    skew[:, 3] = 1.0
    assert (sample_positions(skew, 7, with_weights=True, generator=g) == 3).all()


def test_real_sampler_coefficients():
    data = tiny_data()
    weights = torch.rand(len(data.labels), generator=torch.Generator().manual_seed(3)) + 0.1
    for weighting in ("sample", "mean"):
        cfg = smoke_cfg(weighting=weighting, batch_real=5)
        sampler = RealSampler.for_job(DistillJob(data, weights, cfg, 0, lambda *a: None))
        idx, coef = sampler.draw(torch.Generator().manual_seed(0))
        assert idx.shape == coef.shape == (3, 5)
        assert (data.labels[idx] == torch.arange(3)[:, None]).all()
        torch.testing.assert_close(coef.sum(1), torch.ones(3))
        if weighting == "sample":
            torch.testing.assert_close(coef, torch.full((3, 5), 0.2))
        else:  # the weighted mean: coefficients proportional to the drawn samples' weights
            expected = weights[idx] / weights[idx].sum(1, keepdim=True)
            torch.testing.assert_close(coef, expected)


def test_init_draws_distinct_real_images_of_each_class():
    data = tiny_data()
    table, w = class_table(data.labels, uniform_weights(data.labels), 3)
    syn = init_synthetic(data.images, table, w, 4, torch.Generator().manual_seed(0))
    assert syn.shape == (3, 4, 3, 8, 8)
    for c in range(3):
        for img in syn[c]:
            match = (data.images == img).flatten(1).all(1).nonzero().squeeze(1)
            assert len(match) == 1 and data.labels[match].item() == c


def _job(data, cfg, progress=lambda d, t, l: None):
    return DistillJob(data, uniform_weights(data.labels), cfg, 0, progress)


def smoke_cfg(**overrides):
    base = dict(ipc=2, iterations=6, batch_real=4, net_width=8, net_depth=2)
    return preset("smoke").with_overrides(**{**base, **overrides})


def test_distill_dm_runs_reproducibly_and_reduces_loss():
    data = tiny_data()
    cfg = smoke_cfg(iterations=40, dsa_strategy="none")
    a = get_method("dm")(_job(data, cfg))
    b = get_method("dm")(_job(data, cfg))
    assert a.images.shape == (6, 3, 8, 8) and a.labels.tolist() == [0, 0, 1, 1, 2, 2]
    torch.testing.assert_close(a.images, b.images)
    assert torch.isfinite(a.images).all()
    assert sum(a.losses[-5:]) < sum(a.losses[:5])


def test_weighted_mean_mode_runs():
    data = tiny_data()
    out = get_method("dm")(_job(data, smoke_cfg(weighting="mean")))
    assert torch.isfinite(out.images).all()


def test_divergence_is_a_clear_error():
    data = tiny_data()
    with pytest.raises(DivergedError, match="non-finite"):
        get_method("dm")(_job(data, smoke_cfg(lr_img=1e38, momentum_img=0.9, iterations=20)))


def test_progress_can_cancel():
    def progress(done, total, loss):
        if done == 3:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        get_method("dm")(_job(tiny_data(), smoke_cfg(), progress))
