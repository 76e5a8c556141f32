import contextlib

import pytest
import torch

from ddcore import augment
from ddcore.config import preset
from ddcore.data import BiasedTensors
from ddcore.density import uniform_weights
from ddcore.errors import Cancelled, DivergedError
from ddcore.methods import DistillJob, get_method
from ddcore.methods.dm import class_groups, dm_loss, real_means, syn_backward
from ddcore.methods.sampling import (
    RealSampler,
    class_table,
    init_synthetic,
    sample_positions,
)
from ddcore.nets import ConvNet


def tiny_data(n_per_class=12, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    images = torch.rand(len(labels), 3, 8, 8, generator=g)
    return BiasedTensors(images, labels, labels.clone(), classes)


def test_dm_loss_matches_hand_computation():
    real_mean = torch.tensor([[2.5, 3.5], [1.0, 1.0]])  # [C=2, d=2]
    syn = torch.tensor([[[1.0, 1.0]], [[1.0, 3.0]]])  # [C=2, IPC=1, d=2]
    # class 0: (2.5, 3.5) - (1, 1) -> 1.5^2 + 2.5^2 = 8.5; class 1: (1, 1) - (1, 3) -> 0 + 4 = 4
    assert dm_loss(real_mean, syn).item() == pytest.approx(12.5)


def _embedding_setup(seed=0):
    data = tiny_data(n_per_class=20)
    net = ConvNet(3, 3, 8, 2, "instance", (8, 8)).reset_parameters(torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)
    idx = torch.stack([torch.randperm(20, generator=g)[:7] + 20 * c for c in range(3)])  # [C=3, B=7]
    coef = torch.rand(3, 7, generator=g)
    return data, net, idx, coef / coef.sum(1, keepdim=True)


def test_real_means_are_the_coefficient_weighted_embeddings():
    data, net, idx, coef = _embedding_setup()
    no_aug = augment.sample_params("none", torch.Generator())
    expected = torch.stack([(net.embed(data.images[idx[c]]) * coef[c, :, None]).sum(0) for c in range(3)])
    torch.testing.assert_close(real_means(net, data.images, idx, coef, no_aug, chunk=0), expected)


@pytest.mark.parametrize("strategy", ["none", "color_crop_cutout_scale_rotate"])
def test_chunked_and_unchunked_real_means_agree(strategy):
    data, net, idx, coef = _embedding_setup(seed=1)
    params = augment.sample_params(strategy, torch.Generator().manual_seed(4), 3)  # one draw per class
    whole = real_means(net, data.images, idx, coef, params, chunk=0)
    if strategy != "none":  # each class under its own draw: not what one shared draw gives
        shared = augment.AugParams(params.op, {k: v[:1].expand(3) for k, v in params.values.items()})
        assert not torch.allclose(real_means(net, data.images, idx, coef, shared, chunk=0), whole)
    for chunk in (1, 5, 7, 20, 21, 1000):  # smaller than, equal to, across and beyond a class's batch
        torch.testing.assert_close(real_means(net, data.images, idx, coef, params, chunk), whole)


def test_class_groups_cover_every_class_once():
    assert class_groups(10, 50, 0) == [slice(0, 10)]  # a GPU: one pass
    assert class_groups(10, 50, 41) == [slice(c, c + 1) for c in range(10)]  # fewer than a class: one class each
    assert class_groups(10, 10, 41) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert class_groups(3, 2, 1000) == [slice(0, 3)]


@pytest.mark.parametrize("strategy", ["none", "color_crop_cutout_scale_rotate"])
def test_synthetic_side_in_class_groups_has_the_gradient_of_one_pass(strategy):
    data, net, _, _ = _embedding_setup(seed=2)
    net.requires_grad_(False)
    g = torch.Generator().manual_seed(5)
    syn = torch.rand(3, 4, 3, 8, 8, generator=g, requires_grad=True)
    real_mean = torch.randn(3, net.embed_dim, generator=g)
    params = augment.sample_params(strategy, torch.Generator().manual_seed(6), 3)  # one draw per class
    whole = dm_loss(real_mean, net.embed(augment.apply(syn.flatten(0, 1), params.repeat(4))).view(3, 4, -1))
    expected = torch.autograd.grad(whole, syn)[0]
    for chunk in (0, 1, 8, 9):  # all at once, a class at a time, two classes then one
        syn.grad = None
        loss = sum(syn_backward(net, syn, real_mean, params, classes, contextlib.nullcontext())
                   for classes in class_groups(3, 4, chunk))
        assert loss.item() == pytest.approx(whole.item(), rel=1e-5)
        torch.testing.assert_close(syn.grad, expected)


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


def test_underflowed_weights_keep_their_samples_in_the_class():
    # a small --kde-tau underflows rare samples' weights to exactly 0; class 1 (4 samples, one
    # weighted) is padded to 12 columns whose index 0 is a class-0 image
    labels = torch.tensor([0] * 12 + [1] * 4)
    images = torch.rand(len(labels), 3, 8, 8, generator=torch.Generator().manual_seed(0))
    data = BiasedTensors(images, labels, labels.clone(), 2)
    w = torch.full((16,), 1 / 12)
    w[12:] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    table, tw = class_table(labels, w, 2)
    for init in ("weighted", "real"):
        for s in range(10):
            syn = init_synthetic(images, table, tw, 4, torch.Generator().manual_seed(s), init)
            starts = [int((images == img).flatten(1).all(1).nonzero()) for img in syn[1]]
            assert sorted(starts) == [12, 13, 14, 15], (init, starts)  # all of class 1, each once
    cfg = smoke_cfg(weighting="mean", batch_real=4)
    sampler = RealSampler.for_job(DistillJob(data, w, cfg, 0, lambda *a: None))
    idx, coef = sampler.draw(torch.Generator().manual_seed(0))
    assert (labels[idx] == torch.arange(2)[:, None]).all() and sampler.batch == 4
    torch.testing.assert_close(coef[1].sort().values, torch.tensor([0.0, 0.0, 0.0, 1.0]))

def test_init_options_uniform_weighted_and_noise():
    data = tiny_data()
    w = torch.zeros(len(data.labels))
    w[data.labels == 0] = 1e-6
    w[0], w[1] = 0.5, 0.5  # class 0: nearly all weight on samples 0 and 1
    w[data.labels != 0] = 1 / 12
    table, tw = class_table(data.labels, w, 3)
    picks = {init: [init_synthetic(data.images, table, tw, 2, torch.Generator().manual_seed(s), init)[0]
                    for s in range(20)] for init in ("weighted", "real")}
    heavy = data.images[:2]

    def both_heavy(pair):
        return all(any(torch.equal(img, h) for h in heavy) for img in pair)

    assert all(both_heavy(p) for p in picks["weighted"])  # drawn by weight
    assert sum(both_heavy(p) for p in picks["real"]) < 5  # uniform over the 12 images of class 0
    noise = init_synthetic(data.images, table, tw, 2, torch.Generator().manual_seed(0), "noise")
    assert noise.shape == (3, 2, 3, 8, 8) and -0.5 < float(noise.mean()) < 0.5 and 0.7 < float(noise.std()) < 1.3
