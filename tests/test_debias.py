"""Debiasing (ddcore.debias): GCE against a hand computation, LfF's relative weights on
constructed losses, JTT's upsampling of exactly the misclassified samples, SelecMix's partners,
mixing and generalised SupCon on constructed inputs, and smoke runs with each option for the
evaluation and the surrogate."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ddcore import debias, runstore
from ddcore.cli import main
from ddcore.config import preset, validate
from ddcore.data import load_biased
from ddcore.errors import ConfigError
from ddcore.evaluate import train_classifier
from ddcore.nets import init_parameters
from ddcore.pipeline import execute_run
from ddcore.records import Metrics
from ddcore.supcon import SupConLoss
from ddcore.sweeps import results, store
from ddcore.sweeps.backends import LocalBackend, run_sweep
from ddcore.sweeps.spec import expand, parse_spec


def test_gce_matches_a_hand_computation_and_its_gradient_is_confidence_weighted_ce() -> None:
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3]])
    logits = probs.log().requires_grad_()
    targets = torch.tensor([0, 2])
    loss = debias.gce_loss(logits, targets, 0.7)
    # (1 - p_y^q) / q with p_y = 0.5 and 0.3: 0.5^0.7 = 0.615572, 0.3^0.7 = 0.430512
    assert loss.tolist() == pytest.approx([(1 - 0.615572) / 0.7, (1 - 0.430512) / 0.7], rel=1e-5)
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    ce_logits = probs.log().requires_grad_()
    (ce_grad,) = torch.autograd.grad(F.cross_entropy(ce_logits, targets, reduction="none").sum(), ce_logits)
    torch.testing.assert_close(grad, ce_grad * torch.tensor([[0.5 ** 0.7], [0.3 ** 0.7]]))
    # q -> 0 is cross-entropy; q = 1 is 1 - p_y
    near_ce = debias.gce_loss(probs.log(), targets, 1e-4)
    torch.testing.assert_close(near_ce, -torch.tensor([0.5, 0.3]).log(), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(debias.gce_loss(probs.log(), targets, 1.0), torch.tensor([0.5, 0.7]))
    with pytest.raises(ValueError, match="q must be in"):
        debias.gce_loss(logits, targets, 0.0)


class Fixed(nn.Module):
    """Logits read from the input: image i's first pixel row is its logit vector."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, :3]


def test_lff_relative_weights_on_constructed_losses() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    ema = debias.SampleLossEMA(labels, 2, alpha=0.7)
    ema.update(torch.tensor([0, 1, 2]), torch.tensor([0.2, 2.0, 1.0]))
    assert ema.values.tolist() == pytest.approx([0.2, 2.0, 1.0, 0.0])  # a first visit sets the value
    ema.update(torch.tensor([0, 3]), torch.tensor([1.2, 0.5]))
    assert ema.values.tolist() == pytest.approx([0.7 * 0.2 + 0.3 * 1.2, 2.0, 1.0, 0.5])
    assert ema.class_max().tolist() == pytest.approx([2.0, 1.0])
    assert ema.normalised(torch.arange(4)).tolist() == pytest.approx([0.25, 1.0, 1.0, 0.5])
    # W = CE_B / (CE_B + CE_D): 1/2 for equal losses, near 1 where only the biased model fails
    w = debias.relative_difficulty(torch.tensor([1.0, 0.1, 1.0]), torch.tensor([1.0, 1.0, 0.01]))
    assert w.tolist() == pytest.approx([0.5, 0.1 / 1.1, 1.0 / 1.01], rel=1e-6)

    # the joint objective on one batch, with fixed models: weights from the class-normalised losses
    x = torch.zeros(4, 1, 1, 3)
    logits_b = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    logits_d = torch.tensor([[1.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    x[:, 0, 0] = logits_b
    spec = debias.DebiasSpec("lff", gce_q=0.7, lff_ema=0.7, jtt_upweight=20, jtt_id_steps=15)
    lff = debias.LfF(Fixed(), labels, 3, spec)
    loss = lff.loss(lambda _: logits_d, x, labels, torch.arange(4))
    ce_b = F.cross_entropy(logits_b, labels, reduction="none")
    ce_d = F.cross_entropy(logits_d, labels, reduction="none")
    norm_b = ce_b / torch.stack([ce_b[:2].max()] * 2 + [ce_b[2:].max()] * 2)
    norm_d = ce_d / torch.stack([ce_d[:2].max()] * 2 + [ce_d[2:].max()] * 2)
    weight = norm_b / (norm_b + norm_d)
    torch.testing.assert_close(lff.weights(), weight)
    assert weight[1] > 0.5 > weight[0]  # sample 1 fools the biased model but not the debiased one
    torch.testing.assert_close(loss, debias.gce_loss(logits_b, labels, 0.7).mean() + (ce_d * weight).mean())


def test_jtt_upweights_exactly_the_misclassified_samples() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    x = torch.zeros(5, 1, 1, 3)
    x[:, 0, 0] = logits
    labels = torch.tensor([0, 2, 2, 1, 1])  # predictions 0, 1, 2, 0, 1: samples 1 and 3 are wrong
    wrong = debias.misclassified(Fixed(), x, labels, batch=2)
    assert wrong.tolist() == [False, True, False, True, False]
    index = debias.upsample(wrong, 20)
    assert torch.bincount(index, minlength=5).tolist() == [1, 20, 1, 20, 1]
    assert debias.upsample(wrong, 1).tolist() == [0, 1, 2, 3, 4]
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="upweight factor"):
            debias.upsample(wrong, bad)
    # T: the fewest whole epochs holding 15 steps (a 100-image set: 1 step an epoch; 4,000 images: 16)
    assert [debias.identification_epochs(e, s, 15) for e, s in ((300, 1), (300, 2), (10, 16), (4, 15), (5, 1))] \
        == [15, 8, 1, 1, 5]


def test_selecmix_partners_contradict_and_the_partner_dominates_the_mix() -> None:
    similarity = torch.tensor([[1.0, 0.2, 0.9, 0.1, 0.5],
                               [0.2, 1.0, 0.3, 0.8, 0.0],
                               [0.9, 0.3, 1.0, 0.4, 0.6],
                               [0.1, 0.8, 0.4, 1.0, -0.7],
                               [0.5, 0.0, 0.6, -0.7, 1.0]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    # same label, least similar (the same class with another bias); sample 4 is alone in its class
    assert debias.contradicting_partners(similarity, labels, True).tolist() == [1, 0, 3, 2, 4]
    # another label, most similar (the same bias, another class); negative similarities still count
    assert debias.contradicting_partners(similarity, labels, False).tolist() == [2, 3, 0, 1, 2]
    assert debias.contradicting_partners(similarity[:1, :1], labels[:1], False).tolist() == [0]
    with pytest.raises(ValueError, match=r"similarity must be \[B, B\]"):
        debias.contradicting_partners(similarity[:4], labels, True)
    x = torch.arange(5.0).view(5, 1, 1, 1).expand(5, 3, 2, 2)
    mixed = debias.mix(x, torch.tensor([1, 0, 3, 2, 4]), torch.tensor([0.0, 0.5, 0.25, 0.1, 0.3]))
    assert mixed[:, 0, 0, 0].tolist() == pytest.approx([1.0, 0.5, 2.75, 2.1, 4.0])


def test_generalised_supcon_weights_each_term_by_q_p_to_the_q() -> None:
    z = F.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), dim=1)[:, None]
    labels = torch.tensor([0, 0, 1])
    t, q = 0.5, 0.7
    sims = (z[:, 0] @ z[:, 0].T) / t

    def log_p(i: int, j: int) -> torch.Tensor:  # log softmax of pair (i, j) over a != i
        others = [a for a in range(3) if a != i]
        return sims[i, j] - torch.logsumexp(sims[i, others], 0)

    # anchors 0 and 1 have one positive each, anchor 2 none (it contributes 0 to the mean)
    plain = -(log_p(0, 1) + log_p(1, 0)) / 3
    weighted = -(q * log_p(0, 1).exp() ** q * log_p(0, 1) + q * log_p(1, 0).exp() ** q * log_p(1, 0)) / 3
    torch.testing.assert_close(SupConLoss(t)(z, labels), plain)
    torch.testing.assert_close(SupConLoss(t, q=q)(z, labels), weighted)
    with pytest.raises(ValueError, match="q must be in"):
        SupConLoss(t, q=0.0)


def test_selecmix_loss_is_the_mixed_cross_entropy_plus_the_auxiliary_contrastive_loss() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    aux = nn.Sequential(nn.Flatten(), nn.Linear(12, 6))
    aux.embed, aux.embed_dim = aux.forward, 6  # the ConvNet interface SelecMix builds its head on
    spec = debias.DebiasSpec("selecmix", gce_q=0.7, lff_ema=0.7, jtt_upweight=20, jtt_id_steps=15)
    selecmix = debias.SelecMix(aux, spec, torch.Generator().manual_seed(5))
    x, y = torch.randn(6, 3, 2, 2), torch.tensor([0, 0, 1, 1, 2, 2])
    loss = selecmix.loss(net, x, y)
    # the same draws again: the coin for the kind of pair, then each sample's anchor share
    g = torch.Generator().manual_seed(5)
    init_parameters(nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 128)), g)
    same_label = bool(torch.rand((), generator=g) < 0.5)
    share = torch.rand(6, generator=g) * 0.5
    z = selecmix.project(x)
    partner = debias.contradicting_partners(z @ z.T, y, same_label)
    assert (partner != torch.arange(6)).all() and ((y[partner] == y) == same_label).all()
    expected = F.cross_entropy(net(debias.mix(x, partner, share)), y[partner]) + \
        SupConLoss(0.2, q=0.7)(z[:, None], y)
    torch.testing.assert_close(loss, expected)
    # both networks learn from the one loss; the kept one never sees an unmixed batch
    loss.backward()
    assert all(p.grad is not None for p in [*net.parameters(), *aux.parameters(), *selecmix.head.parameters()])

    # SelecMix+L: LfF's objective on the plain batch, plus the mixed loss at 0.1 and the contrastive loss
    biased = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    lff_spec = debias.DebiasSpec("selecmix-lff", gce_q=0.7, lff_ema=0.7, jtt_upweight=20, jtt_id_steps=15)
    with_lff = debias.SelecMix(aux, lff_spec, torch.Generator().manual_seed(5), debias.LfF(biased, y, 3, lff_spec))
    twin = debias.LfF(biased, y, 3, lff_spec)  # the same biased model, fresh loss averages
    combined = with_lff.loss(net, x, y, torch.arange(6))
    expected = twin.loss(net, x, y, torch.arange(6)) + 0.1 * F.cross_entropy(net(debias.mix(x, partner, share)),
                                                                             y[partner]) + \
        SupConLoss(0.2, q=0.7)(z[:, None], y)
    torch.testing.assert_close(combined, expected)
    with pytest.raises(ValueError, match="needs the samples' positions"):
        with_lff.loss(net, x, y)


def test_jtt_trains_its_final_model_with_the_plain_recipe() -> None:
    """With lambda_up = 1 the upsampled set is the training set itself, so JTT's final model is
    the plain evaluation model, weight for weight: the recipe (seed, optimiser, schedule,
    augmentation) is shared; only the multiset of samples differs."""
    cfg = preset("smoke").with_overrides(net_width=8, eval_batch=64)
    train = load_biased(cfg.data, train=True, seed=0)
    x, y = train.images[:128], train.labels[:128]
    plain = train_classifier(x, y, 10, cfg, 3, seed=3)
    jtt = train_classifier(x, y, 10, cfg.with_overrides(eval_debias="jtt", jtt_upweight=1), 3, seed=3)
    lff = train_classifier(x, y, 10, cfg.with_overrides(eval_debias="lff"), 3, seed=3)
    selecmix = train_classifier(x, y, 10, cfg.with_overrides(eval_debias="selecmix"), 3, seed=3)
    selecmix_lff = train_classifier(x, y, 10, cfg.with_overrides(eval_debias="selecmix-lff"), 3, seed=3)
    for a, b in zip(plain.parameters(), jtt.parameters()):
        assert torch.equal(a, b)
    for other in (lff, selecmix, selecmix_lff):
        assert not all(torch.equal(a, c) for a, c in zip(plain.parameters(), other.parameters()))


def smoke(**overrides):
    return preset("smoke").with_overrides(eval_epochs=2, map_points=100, device="cpu", jtt_upweight=3, **overrides)


def test_smoke_runs_with_each_option_write_their_metrics(tmp_path) -> None:
    runs = {
        "eval-lff-surrogate-jtt": smoke(eval_debias="lff", surrogate="ce", surrogate_debias="jtt"),
        "eval-jtt-surrogate-lff": smoke(eval_debias="jtt", surrogate="ce", surrogate_debias="lff"),
        "plain-ce": smoke(surrogate="ce"),
        "baseline-jtt": smoke(kind="baseline", eval_debias="jtt"),
        "eval-selecmix-surrogate-selecmix": smoke(eval_debias="selecmix", surrogate="ce", surrogate_debias="selecmix"),
        "baseline-selecmix": smoke(kind="baseline", eval_debias="selecmix"),
        "eval-selecmix-lff-surrogate-selecmix-lff": smoke(eval_debias="selecmix-lff", surrogate="ce",
                                                          surrogate_debias="selecmix-lff"),
    }
    for name, cfg in runs.items():
        metrics = execute_run(runstore.create_run(tmp_path / name, validate(cfg)))
        assert Metrics.load(tmp_path / name) == metrics
        assert metrics.test_acc_unbiased is not None and math.isfinite(metrics.test_acc_unbiased)
        assert metrics.weight_share_conflicting is not None
        saved = json.loads((tmp_path / name / "config.json").read_text())
        assert saved["eval"]["eval_debias"] == cfg.eval.eval_debias
        assert saved["reweight"]["surrogate_debias"] == cfg.reweight.surrogate_debias
    # the surrogate cache keeps the debiased and the plain cross-entropy surrogates apart
    assert len(list((tmp_path / ".cache").glob("surrogate-*.pt"))) == 5
    log = "\n".join(runstore.read_log(tmp_path / "eval-jtt-surrogate-lff"))
    assert "loaded from cache" not in log


@pytest.mark.parametrize(("overrides", "message"), [
    ({"eval_debias": "mixup"}, "unknown evaluation debiasing 'mixup'; choose one of none, lff, jtt, selecmix, selecmix-lff"),
    ({"surrogate_debias": "groupdro"}, "unknown surrogate debiasing 'groupdro'; choose one of none, lff, jtt, selecmix, selecmix-lff"),
    ({"surrogate_debias": "lff"}, "--surrogate-debias lff trains a cross-entropy classifier; use it with --surrogate ce"),
    ({"gce_q": 0.0}, "GCE q must be positive and at most 1"),
    ({"lff_ema": 1.0}, "LfF's moving-average factor (--lff-ema) must be in [0, 1)"),
    ({"jtt_upweight": 0}, "JTT's upweight must be between 1 and 1000"),
    ({"jtt_upweight": 2.5}, "JTT's upweight (--jtt-upweight) must be a whole number"),
    ({"jtt_id_steps": 0}, "JTT's identification steps (--jtt-id-steps) must be a whole number of at least 1"),
])
def test_bad_debias_options_are_one_line_errors(overrides, message) -> None:
    with pytest.raises(ConfigError) as err:
        validate(preset("smoke").with_overrides(**overrides))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_takes_the_options_and_refuses_bad_ones(tmp_path, capsys) -> None:
    assert main(["distill", "--preset", "smoke", "--eval-debias", "nope", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown evaluation debiasing 'nope'" in err
    out = tmp_path / "runs" / "r"
    assert main(["distill", "--preset", "smoke", "--eval-epochs", "1", "--map-points", "100", "--device", "cpu",
                 "--surrogate", "ce", "--surrogate-debias", "jtt", "--jtt-upweight", "5", "--out", str(out)]) == 0
    cfg = runstore.read_config(out)
    assert (cfg.reweight.surrogate_debias, cfg.eval.jtt_upweight) == ("jtt", 5)
    # re-evaluation with another method records which one its accuracies come from
    assert main(["evaluate", str(out), "--eval-debias", "lff", "--eval-epochs", "1"]) == 0
    assert Metrics.load(out).eval_debias == "lff" and runstore.read_config(out).eval.eval_debias == "none"


def test_eval_debias_is_a_sweep_axis_and_reaches_the_baseline(tmp_path) -> None:
    methods = ("none", "lff", "jtt", "selecmix", "selecmix-lff")
    spec = parse_spec({"name": "debias", "preset": "smoke",
                       "axes": {"eval_debias": list(methods), "kind": ["distill", "baseline"]}})
    cells = expand(spec)
    assert len(cells) == 10 and len({c.name for c in cells}) == 10
    assert sorted((c.config.kind, c.config.eval.eval_debias) for c in cells) == sorted(
        (k, m) for k in ("distill", "baseline") for m in methods)
    # a debiased evaluation shows in the cell's folder name; the plain one keeps the usual name
    assert all((f"-eval-{c.config.eval.eval_debias}-" in c.name) == (c.config.eval.eval_debias != "none")
               for c in cells)
    run_sweep(tmp_path, spec, LocalBackend(start_worker=False))  # queued only: the table names the axis
    table = results.long_table(store.sweep_cells(tmp_path, "debias"))
    assert sorted((r["variant"], r["eval_debias"]) for r in table.records()) == sorted(
        (v, m) for v in ("reweighted", "full data") for m in methods)
