import math

import pytest
import torch
import torch.nn.functional as F

from ddcore.supcon import SupConLoss


def brute_force(features, labels, t):
    """Direct transcription of the formula, one anchor at a time."""
    b, v, _ = features.shape
    z = features.transpose(0, 1).reshape(b * v, -1)
    y = labels.repeat(v)
    total = 0.0
    for i in range(len(z)):
        others = [a for a in range(len(z)) if a != i]
        denom = sum(math.exp(float(z[i] @ z[a]) / t) for a in others)
        pos = [p for p in others if y[p] == y[i]]
        if pos:
            total += -sum(math.log(math.exp(float(z[i] @ z[p]) / t) / denom) for p in pos) / len(pos)
    return total / len(z)


def test_matches_brute_force_on_random_features():
    g = torch.Generator().manual_seed(0)
    f = F.normalize(torch.randn(6, 2, 5, generator=g), dim=-1)
    y = torch.tensor([0, 0, 1, 1, 2, 0])
    assert SupConLoss(0.5)(f, y).item() == pytest.approx(brute_force(f, y, 0.5), rel=1e-5)


def test_known_value_on_constructed_features():
    # two samples, one view each, different labels -> no positives; with a third identical
    # vector of label 0: anchors 0 and 2 have one positive each at similarity 1.
    z = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]]])
    y = torch.tensor([0, 1, 0])
    t = 1.0
    # anchor 0: -log(e^1 / (e^0 + e^1)); anchor 2 the same; anchor 1 has no positive -> 0
    per_anchor = -math.log(math.e / (1 + math.e))
    assert SupConLoss(t)(z, y).item() == pytest.approx(2 * per_anchor / 3, rel=1e-6)


def test_finite_with_no_positives():
    z = F.normalize(torch.randn(4, 1, 8), dim=-1)
    loss = SupConLoss(0.07)(z, torch.arange(4))
    assert torch.isfinite(loss) and loss.item() == 0.0


def test_stable_at_low_temperature():
    z = F.normalize(torch.randn(32, 2, 16), dim=-1)
    loss = SupConLoss(0.01)(z, torch.randint(0, 3, (32,)))
    assert torch.isfinite(loss)



def test_generalised_supcon_is_finite_and_gradients_too_at_low_temperature():
    # two antipodal vectors of one class: after the row max each anchor's own logit is 2 / T = 100
    z = torch.tensor([[[1.0, 0.0]], [[-1.0, 0.0]]], requires_grad=True)
    loss = SupConLoss(0.02, q=0.7)(z, torch.tensor([0, 0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()

def test_explicit_errors():
    with pytest.raises(ValueError, match="temperature"):
        SupConLoss(0.0)
    with pytest.raises(ValueError, match=r"\[batch, views, dim\]"):
        SupConLoss()(torch.randn(4, 8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        SupConLoss()(torch.randn(4, 2, 8), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="two vectors"):
        SupConLoss()(torch.randn(1, 1, 8), torch.zeros(1, dtype=torch.long))


def test_the_surrogate_stops_at_its_step_budget():
    from ddcore.surrogate import SurrogateSpec, train_surrogate

    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(40, 3, 8, 8, generator=g), torch.arange(4).repeat(10)
    calls = []
    for max_steps, expected in ((7, 7), (None, 30), (100, 30)):  # 3 epochs of 10 steps, capped or not
        calls.clear()
        spec = SurrogateSpec("supcon", 3, 0.05, 4, 8, 2, "instance", 0.1, max_steps)
        train_surrogate(images, labels, 4, spec, torch.Generator().manual_seed(1), torch.Generator().manual_seed(2),
                        lambda done, total, loss: calls.append((done, total)))
        assert calls[-1] == (expected, expected) and len(calls) == expected


def test_the_surrogate_trained_in_chunks_is_the_one_trained_whole(monkeypatch):
    from ddcore import nets
    from ddcore.surrogate import SurrogateSpec, train_surrogate

    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(48, 3, 8, 8, generator=g), torch.arange(4).repeat(12)
    spec = SurrogateSpec("supcon", 2, 0.05, 16, 8, 2, "instance", 0.1)

    def trained(chunk_bytes: int) -> torch.Tensor:
        monkeypatch.setattr(nets, "CPU_CHUNK_BYTES", chunk_bytes)
        model = train_surrogate(images, labels, 4, spec, torch.Generator().manual_seed(1),
                                torch.Generator().manual_seed(2))
        return model.embed(images)

    per_image = 8 * 8 * 8 * 4  # width x H x W x float32 bytes of the first activation map
    whole = trained(2**40)
    for images_per_chunk in (1, 5, 32):  # the 32 views of a step: one chunk each, a few, all at once
        torch.testing.assert_close(trained(images_per_chunk * per_image), whole, rtol=1e-4, atol=1e-5)
