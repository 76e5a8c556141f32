"""Gradient matching (DC / DSA): the distance, the weighted CE, the loop schedule, the method, presets, CLI."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from ddcore import runstore
from ddcore.cli import main
from ddcore.config import preset, validate
from ddcore.density import uniform_weights
from ddcore.errors import Cancelled, ConfigError, DivergedError
from ddcore.methods import DistillJob, get_method
from ddcore.methods.dc import loop_schedule, match_distance, weighted_cross_entropy, train_network

from test_dm import tiny_data  # tests/ is on sys.path (pytest rootdir insertion)


def test_match_distance_matches_hand_computation():
    # conv-like weight [2, 1, 1, 2] -> rows (1, 0), (0, 1) against (1, 1), (0, -1):
    # 1 - cos = 1 - 1/sqrt(2), and 1 - (-1) = 2
    g_real = [torch.tensor([[[[1.0, 0.0]]], [[[0.0, 1.0]]]]), torch.tensor([5.0, -3.0])]
    g_syn = [torch.tensor([[[[1.0, 1.0]]], [[[0.0, -1.0]]]]), torch.tensor([-1.0, 7.0])]  # the bias: ignored
    expected = (1 - 1 / math.sqrt(2)) + 2.0
    assert match_distance(g_real, g_syn).item() == pytest.approx(expected, abs=1e-5)
    # a linear weight [1, 3]: orthogonal rows -> 1; 1-D tensors (norm affines, biases) add nothing
    lin_r, lin_s = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 2.0, 0.0]])
    both = match_distance(g_real + [lin_r, torch.ones(4)], g_syn + [lin_s, -torch.ones(4)])
    assert both.item() == pytest.approx(expected + 1.0, abs=1e-5)


def test_identical_or_scaled_gradients_are_at_distance_zero():
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(4, 3, 3, 3, generator=g), torch.randn(4, generator=g), torch.randn(10, 36, generator=g)]
    assert match_distance(grads, grads).item() == pytest.approx(0.0, abs=1e-5)
    assert match_distance(grads, [3 * t for t in grads]).item() == pytest.approx(0.0, abs=1e-5)


def test_weighted_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(6, 4, generator=g), torch.tensor([0, 1, 2, 3, 0, 1])
    for scale in (1.0, 1 / 6, 42.0):  # uniform weights of any scale: the plain mean
        torch.testing.assert_close(weighted_cross_entropy(logits, labels, torch.full((6,), scale)),
                                   F.cross_entropy(logits, labels))
    # by hand: two samples with CE log 2 and log(1 + 2e), weights 3 and 1
    logits2 = torch.tensor([[0.0, 0.0, -math.inf], [0.0, 1.0, 1.0]])
    ce = [math.log(2), math.log(1 + 2 * math.e)]
    got = weighted_cross_entropy(logits2, torch.tensor([0, 0]), torch.tensor([3.0, 1.0]))
    assert got.item() == pytest.approx((3 * ce[0] + ce[1]) / 4)


@pytest.mark.parametrize(("ipc", "expected"), [
    (1, (1, 1)), (10, (10, 50)), (20, (20, 25)), (30, (30, 20)), (40, (40, 15)), (50, (50, 10)),  # the reference
    (2, (1, 1)), (5, (1, 1)), (6, (10, 50)), (15, (10, 50)), (16, (20, 25)), (44, (40, 15)), (500, (50, 10)),
])
def test_loop_schedule_uses_the_nearest_listed_ipc(ipc, expected):
    assert loop_schedule(ipc) == expected


def test_explicit_loops_replace_the_rule_and_bad_values_are_clear():
    assert loop_schedule(10, outer=3) == (3, 50) and loop_schedule(10, inner=2) == (10, 2)
    with pytest.raises(ConfigError, match="outer loop must be at least 1"):
        validate(preset("smoke", "dc").with_overrides(outer_loop=0))
    with pytest.raises(ConfigError, match="network lr must be positive"):
        validate(preset("smoke", "dsa").with_overrides(lr_net=0.0))
    with pytest.raises(ConfigError, match="method dc"):
        validate(preset("smoke", "dsa").with_overrides(dsa_strategy="none"))
    with pytest.raises(ConfigError, match="bf16"):
        validate(preset("quick", "dm").with_overrides(method="dc", bf16="true"))  # autocast is DM's alone
    assert validate(preset("quick", "dm").with_overrides(method="dc")).distill.bf16 == "auto"
    with pytest.raises(ConfigError, match="unknown method"):
        preset("quick", "nope")


def test_presets_are_method_specific():
    assert preset("paper") == preset("paper", "dm") and preset("paper").distill.iterations == 20000
    for method in ("dc", "dsa"):
        d = preset("paper", method).distill
        assert (d.method, d.lr_img, d.iterations, d.batch_real, d.lr_net) == (method, 0.1, 1000, 256, 0.01)
        for name in ("smoke", "quick", "paper"):
            validate(preset(name, method))
        assert preset("quick", method).distill.iterations < preset("quick").distill.iterations


def _job(data, cfg, progress=lambda d, t, l: None):
    return DistillJob(data, uniform_weights(data.labels), cfg, 0, progress)


def tiny_cfg(method, **overrides):
    base = dict(ipc=2, iterations=6, batch_real=6, net_width=8, net_depth=2, outer_loop=2, inner_loop=2)
    return preset("smoke", method).with_overrides(**{**base, **overrides})


@pytest.mark.parametrize("method", ["dc", "dsa"])
def test_distill_runs_reproducibly_and_reduces_the_matching_loss(method):
    data = tiny_data()
    cfg = tiny_cfg(method, iterations=20)
    a = get_method(method)(_job(data, cfg))
    b = get_method(method)(_job(data, cfg))
    assert a.images.shape == (6, 3, 8, 8) and a.labels.tolist() == [0, 0, 1, 1, 2, 2]
    torch.testing.assert_close(a.images, b.images)
    assert a.losses == b.losses and len(a.losses) == 20
    assert torch.isfinite(a.images).all()
    assert sum(a.losses[-5:]) < sum(a.losses[:5])


def test_weighted_mean_mode_runs():
    out = get_method("dc")(_job(tiny_data(), tiny_cfg("dc", weighting="mean")))
    assert torch.isfinite(out.images).all()


def test_divergence_is_a_clear_error():
    with pytest.raises(DivergedError, match="DC diverged.*non-finite"):
        get_method("dc")(_job(tiny_data(), tiny_cfg("dc", lr_img=1e38, momentum_img=0.9, iterations=20)))


def test_progress_can_cancel():
    seen = []

    def progress(done, total, loss):
        seen.append(done)
        if done == 3:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        get_method("dsa")(_job(tiny_data(), tiny_cfg("dsa"), progress))
    assert seen == [1, 2, 3]  # reported after every iteration


@pytest.mark.parametrize("method", ["dc", "dsa"])
def test_smoke_run_through_the_cli(method, tmp_path, capsys):
    out = tmp_path / f"smoke-{method}"
    # an untrained surrogate and 3 iterations keep it fast; DM's CLI test covers the surrogate
    args = ["--preset", "smoke", "--method", method, "--surrogate", "untrained", "--iterations", "3"]
    assert main(["distill", *args, "--out", str(out), "--device", "cpu"]) == 0
    assert "unbiased" in capsys.readouterr().out
    assert runstore.read_status(out).state == "done"
    cfg = json.loads((out / "config.json").read_text())["distill"]
    assert (cfg["method"], cfg["lr_img"]) == (method, preset("smoke", method).distill.lr_img)
    for name in ("synthetic.pt", "synthetic.png", "metrics.json", "embeddings.npz"):
        assert (out / name).is_file(), name


def test_inner_loop_visits_every_synthetic_image_once_per_epoch():
    class Recorder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(3 * 4 * 4, 3)
            self.seen: list[list[int]] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seen.append(x[:, 0, 0, 0].round().long().tolist())
            return self.linear(x.flatten(1))

    images = torch.rand(10, 3, 4, 4)
    images[:, 0, 0, 0] = torch.arange(10.0)  # each image names itself
    net = Recorder()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    train_network(net, opt, images, torch.arange(10) % 3, 3, 4, "none", torch.Generator().manual_seed(0),
                  torch.Generator())
    assert [len(b) for b in net.seen] == [4, 4, 2] * 3  # batches of batch_train, the last one short
    epochs = [sum(net.seen[i:i + 3], []) for i in (0, 3, 6)]
    assert all(sorted(e) == list(range(10)) for e in epochs)  # every image exactly once per epoch
    assert len({tuple(e) for e in epochs}) > 1  # reshuffled each epoch


def test_every_method_is_one_registry_entry_with_its_presets_and_checks():
    from ddcore.config import METHODS
    from ddcore.methods import METHOD_SPECS, get_method, get_method_spec

    assert tuple(METHOD_SPECS) == METHODS
    for name, spec in METHOD_SPECS.items():
        assert spec.name == name and get_method(name) is spec.run and set(spec.presets) == {"smoke", "quick", "paper"}
        for preset_name, values in spec.presets.items():  # a preset is the spec's values on the defaults
            d = preset(preset_name, name).distill
            assert all(getattr(d, k) == v for k, v in values.items())
    assert [n for n, s in METHOD_SPECS.items() if s.autocast] == ["dm"]
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        get_method_spec("nope")
