import math

import pytest
import torch
import torch.nn.functional as F

from ddcore import density
from ddcore.config import SIGMA_RANGE


def brute_log_density(z, labels, sigma):
    out = torch.empty(len(z))
    for i in range(len(z)):
        same = [j for j in range(len(z)) if labels[j] == labels[i]]
        p = sum(math.exp(-float(((z[i] - z[j]) ** 2).sum()) / (2 * sigma**2)) for j in same) / len(same)
        out[i] = math.log(p)
    return out


def test_kde_matches_brute_force_and_chunking_changes_nothing():
    g = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(60, 4, generator=g), dim=1)
    labels = torch.randint(0, 3, (60,), generator=g)
    expected = brute_log_density(z, labels, 0.3)
    for chunk in (1, 7, 4096):
        got = density.kde_log_density(z, labels, 0.3, chunk=chunk)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_isolated_points_are_low_density():
    cluster = torch.zeros(20, 2) + 0.01 * torch.randn(20, 2)
    outlier = torch.tensor([[5.0, 5.0]])
    z = torch.cat([cluster, outlier])
    log_p = density.kde_log_density(z, torch.zeros(21, dtype=torch.long), 0.5)
    assert log_p[-1] < log_p[:-1].min() - 2


def test_weights_normalised_per_class_and_inverse_to_density():
    log_p = torch.tensor([0.0, -1.0, -2.0, 0.0, -3.0])
    labels = torch.tensor([0, 0, 0, 1, 1])
    w = density.density_weights(log_p, labels, tau=1.0)
    assert w[labels == 0].sum().item() == pytest.approx(1.0)
    assert w[labels == 1].sum().item() == pytest.approx(1.0)
    assert w[0] < w[1] < w[2]
    # tau = 1 is exactly inverse density
    inv = torch.exp(-log_p[:3]) / torch.exp(-log_p[:3]).sum()
    torch.testing.assert_close(w[:3], inv)


def test_weights_tend_to_uniform_as_tau_grows():
    log_p = torch.linspace(-5, 0, 10)
    labels = torch.zeros(10, dtype=torch.long)
    spreads = [float(density.density_weights(log_p, labels, tau).std()) for tau in (1, 10, 100, 1e6)]
    assert spreads == sorted(spreads, reverse=True)
    torch.testing.assert_close(density.density_weights(log_p, labels, 1e9), torch.full((10,), 0.1))
    with pytest.raises(ValueError):
        density.density_weights(log_p, labels, 0.0)


def test_group_balancing_on_two_clusters():
    """95 aligned points in one tight cluster, 5 conflicting in another: inverse density with a
    bandwidth between the cluster radius and their distance gives each group half the weight."""
    g = torch.Generator().manual_seed(1)
    aligned = 0.01 * torch.randn(95, 2, generator=g)
    conflicting = torch.tensor([3.0, 0.0]) + 0.01 * torch.randn(5, 2, generator=g)
    z = torch.cat([aligned, conflicting])
    labels = torch.zeros(100, dtype=torch.long)
    w = density.density_weights(density.kde_log_density(z, labels, 0.2), labels, 1.0)
    conflicting_mask = torch.arange(100) >= 95
    share, count = density.conflict_shares(w, conflicting_mask)
    assert count == pytest.approx(0.05)
    assert share == pytest.approx(0.5, abs=0.01)


def test_smoothing_evens_the_weight_inside_a_cluster_and_keeps_each_clusters_total():
    """A cluster of 95 points (spread over ~4 bandwidths) whose raw weights pile onto its edge, and
    one isolated point: smoothing spreads the cluster's weight evenly and leaves both totals."""
    g = torch.Generator().manual_seed(2)
    cluster = torch.randn(95, 2, generator=g)
    isolated = torch.tensor([[40.0, 0.0]])
    z = torch.cat([cluster, isolated])
    labels = torch.zeros(96, dtype=torch.long)
    raw = torch.cat([cluster.norm(dim=1) ** 4, torch.tensor([50.0])])  # the edge far heavier than the core
    raw = raw / raw.sum()
    smooth = density.smooth_weights(raw, z, labels, sigma=1.0, chunk=7)

    def ess(w: torch.Tensor) -> float:
        return float(w.sum() ** 2 / (w ** 2).sum()) / len(w)

    assert float(smooth.sum()) == pytest.approx(1.0)
    assert float(smooth[95]) == pytest.approx(float(raw[95]), rel=1e-3)  # alone: K_ii = 1, the rest ~0
    assert ess(smooth[:95]) > 2 * ess(raw[:95]) and ess(smooth[:95]) > 0.5


def test_smoothing_works_per_class():
    z = torch.tensor([[0.0], [0.1], [0.0], [0.1]])
    labels = torch.tensor([0, 0, 1, 1])
    w = torch.tensor([0.9, 0.1, 0.5, 0.5])
    smooth = density.smooth_weights(w, z, labels, sigma=10.0)  # wider than the points: each class even
    torch.testing.assert_close(smooth, torch.full((4,), 0.5), atol=1e-4, rtol=0)


def test_auto_bandwidth_follows_the_embedding_scale():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(300, 8, generator=g)
    labels = torch.randint(0, 3, (300,), generator=g)
    s1 = density.auto_bandwidth(z, labels, torch.Generator().manual_seed(0))
    s2 = density.auto_bandwidth(3 * z, labels, torch.Generator().manual_seed(0))
    assert s1 > 0 and s2 == pytest.approx(3 * s1, rel=1e-5)
    # the scale (the config's kde_scale) multiplies the median within-class distance
    pairs = [torch.cdist(z[labels == c], z[labels == c]) for c in range(3)]
    medians = [d[torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)].median() for d in pairs]
    assert s1 == pytest.approx(float(torch.stack(medians).median()), rel=1e-5)  # each class has < 1000 samples
    assert density.auto_bandwidth(z, labels, torch.Generator().manual_seed(0), 0.7) == pytest.approx(0.7 * s1)



def test_a_collapsed_embedding_gets_the_smallest_sigma_and_even_weights():
    """Every sample of a class at one point (up to 1e-5): no density to find. A sigma of 1e-6 let
    cdist's float32 rounding alone spread the weights over 3x; at the smallest sigma a user may
    set, the rounding (~2e-7 in a squared distance) still moves them by up to ~10%."""
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.ones(300, 256) + 1e-5 * torch.randn(300, 256, generator=g), dim=1)
    labels = torch.zeros(300, dtype=torch.long)
    sigma = density.auto_bandwidth(z, labels, torch.Generator().manual_seed(0), 0.7)
    assert sigma == SIGMA_RANGE[0]
    w = density.density_weights(density.kde_log_density(z, labels, sigma), labels, 0.75)
    assert float(w.max() / w.min()) < 1.2

def test_uniform_weights():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    w = density.uniform_weights(labels)
    torch.testing.assert_close(w, torch.tensor([0.5, 0.5, 1 / 3, 1 / 3, 1 / 3, 1.0]))


def test_oracle_weights_equalise_the_group_totals_exactly():
    from ddcore.density import oracle_weights

    # class 0: 5 aligned (bias 0), 2 of bias 1, 1 of bias 2; class 1: 4 aligned (bias 1), 1 of bias 0
    labels = torch.tensor([0] * 8 + [1] * 5)
    bias = torch.tensor([0, 0, 0, 0, 0, 1, 1, 2, 1, 1, 1, 1, 0])
    w = oracle_weights(labels, bias)
    for c, groups in ((0, (0, 1, 2)), (1, (0, 1))):
        totals = [float(w[(labels == c) & (bias == b)].sum()) for b in groups]
        assert totals == pytest.approx([1 / len(groups)] * len(groups))  # equal per group, class sums to 1
        for b in groups:  # equal within a group
            members = w[(labels == c) & (bias == b)]
            assert torch.allclose(members, members[0].expand_as(members))


def test_group_balance_is_one_for_the_oracle_and_low_for_uniform_weights_on_biased_data():
    from ddcore.density import group_balance, oracle_weights, uniform_weights

    labels = torch.tensor([0] * 20 + [1] * 20)
    bias = torch.tensor([0] * 18 + [1, 2] + [1] * 19 + [0])  # 90% / 95% aligned
    assert group_balance(oracle_weights(labels, bias), labels, bias) == pytest.approx(1.0)
    uniform = group_balance(uniform_weights(labels), labels, bias)
    # class 0: totals 0.9, 0.05, 0.05 over 3 groups; class 1: 0.95, 0.05 over 2
    by_hand = [-(0.9 * math.log(0.9) + 2 * 0.05 * math.log(0.05)) / math.log(3),
               -(0.95 * math.log(0.95) + 0.05 * math.log(0.05)) / math.log(2)]
    assert uniform == pytest.approx(sum(by_hand) / 2)
