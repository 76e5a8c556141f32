"""MTT: the unrolled loss, the schedule, the learned-lr guards, expert training and its cache,
the method end to end, presets and the CLI."""
import json

import pytest
import torch
import torch.nn.functional as F

from ddcore import augment, runstore
from ddcore.methods import experts
from ddcore.cli import main
from ddcore.config import preset, validate
from ddcore.density import uniform_weights
from ddcore.errors import ConfigError, DivergedError
from ddcore.methods import DistillJob, get_method
from ddcore.methods.mtt import MTT_SCHEDULE, check_lr, mtt_schedule, trajectory_loss
from ddcore.nets import ConvNet

from test_dm import tiny_data  # tests/ is on sys.path (pytest rootdir insertion)


def tiny_net(classes=3):
    return ConvNet(classes, 3, width=2, depth=1, image_size=(8, 8)).reset_parameters(torch.Generator().manual_seed(0))


def direct_logits(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The tiny ConvNet written out by hand on a flat vector laid out as conv w, conv b, norm w,
    norm b, linear w, linear b: an independent check of the functional path."""
    sizes = [2 * 3 * 9, 2, 2, 2, 3 * 2 * 4 * 4, 3]
    cw, cb, nw, nb, lw, lb = theta.split(sizes)
    h = F.conv2d(x, cw.view(2, 3, 3, 3), cb, padding=1)
    h = F.avg_pool2d(F.relu(F.group_norm(h, 2, nw, nb)), 2)
    return F.linear(h.flatten(1), lw.view(3, 32), lb)


def test_trajectory_loss_matches_a_direct_unrolled_computation():
    g = torch.Generator().manual_seed(1)
    net = tiny_net()
    shapes = experts.param_shapes(net)
    start = torch.cat([p.detach().flatten() for p in net.parameters()])
    target = start + 0.05 * torch.randn(start.shape, generator=g)
    syn = torch.rand(6, 3, 8, 8, generator=g, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    lr = torch.tensor(0.3, requires_grad=True)
    batches = [torch.tensor([0, 2, 4]), torch.tensor([1, 3, 5, 0])]
    none = augment.AugParams("none", {})

    loss = trajectory_loss(net, shapes, start, target, syn, labels, lr, batches, [none, none])
    got = torch.autograd.grad(loss, (syn, lr))

    theta = start.clone().requires_grad_(True)
    for idx in batches:
        ce = F.cross_entropy(direct_logits(theta, syn[idx]), labels[idx])
        theta = theta - lr * torch.autograd.grad(ce, theta, create_graph=True)[0]
    expected = ((theta - target) ** 2).sum() / ((start - target) ** 2).sum()
    want = torch.autograd.grad(expected, (syn, lr))

    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(got[0], want[0], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(got[1], want[1], rtol=1e-4, atol=1e-7)


def test_a_student_that_retraces_the_expert_has_zero_loss():
    # the target is exactly one SGD step of the same network on the same batch
    net = tiny_net()
    shapes = experts.param_shapes(net)
    syn, labels = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(2)), torch.tensor([0, 1, 2, 0])
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    start = torch.cat([p.detach().flatten() for p in net.parameters()])
    F.cross_entropy(net(syn), labels).backward()
    opt.step()
    target = torch.cat([p.detach().flatten() for p in net.parameters()])
    loss = trajectory_loss(net, shapes, start, target, syn, labels, torch.tensor(0.5), [torch.arange(4)],
                           [augment.AugParams("none", {})])
    assert loss.item() == pytest.approx(0.0, abs=1e-8)


def test_flatten_and_unflatten_are_inverse():
    net = tiny_net()
    shapes = experts.param_shapes(net)
    params = dict(net.named_parameters())
    flat = experts.flatten(params)
    back = experts.unflatten(flat, shapes)
    assert list(back) == list(params)
    for name in params:
        torch.testing.assert_close(back[name], params[name].detach())
    stacked = torch.stack([flat, 2 * flat])  # a leading batch dimension is kept
    assert experts.unflatten(stacked, shapes)["classifier.weight"].shape == (2, 3, 32)


def test_schedule_by_ipc_and_explicit_values():
    for ipc, values in MTT_SCHEDULE.items():
        assert mtt_schedule(ipc) == values
    assert mtt_schedule(2) == MTT_SCHEDULE[1] and mtt_schedule(20) == MTT_SCHEDULE[10]
    assert mtt_schedule(40) == MTT_SCHEDULE[50] and mtt_schedule(500) == MTT_SCHEDULE[50]
    assert mtt_schedule(10, syn_steps=7) == (7, MTT_SCHEDULE[10][1])
    assert mtt_schedule(10, max_start_epoch=3) == (MTT_SCHEDULE[10][0], 3)


def test_learned_lr_guards():
    check_lr(0.02, 0.01, 5, 1e-5)
    with pytest.raises(DivergedError, match="NaN at iteration 5"):
        check_lr(float("nan"), 0.01, 5, 1e-5)
    with pytest.raises(DivergedError, match="non-positive.*--lr-lr"):
        check_lr(-0.001, 0.01, 5, 1e-5)
    with pytest.raises(DivergedError, match="exploded"):
        check_lr(2.0, 0.01, 5, 1e-5)


SPEC = experts.ExpertSpec(lr=0.05, batch=8, strategy="none", weighting="sample", seed=3)


def test_experts_train_alike_in_parallel_and_alone():
    data, net = tiny_data(), tiny_net()
    w = uniform_weights(data.labels)
    together = experts.train_experts(net, data, w, SPEC, [0, 1], epochs=2)
    alone = torch.cat([experts.train_experts(net, data, w, SPEC, [i], epochs=2) for i in (0, 1)])
    assert together.shape == (2, 3, sum(p.numel() for p in net.parameters()))
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(together[0], together[1])  # own seeds
    assert not torch.allclose(together[0, 0], together[0, -1])  # it trained


def test_each_experts_random_streams_have_their_own_seeds(monkeypatch):
    """Expert i's augmentation once took seed + 1, expert i + 1's own seed: on a CPU the same
    stream then drew one expert's augmentation and the next one's init and batch order."""
    data, net, seeds = tiny_data(), tiny_net(), []

    class Recording(torch.Generator):
        def manual_seed(self, seed):
            seeds.append(seed)
            return super().manual_seed(seed)

    monkeypatch.setattr(torch, "Generator", Recording)
    experts.train_experts(net, data, uniform_weights(data.labels), SPEC, [0, 1, 2], epochs=1)
    assert len(seeds) == 6 and len(set(seeds)) == 6

def test_expert_batches_follow_the_weights():
    data = tiny_data()
    w = torch.zeros(len(data.labels))
    w[[0, 12, 24]] = 1.0  # all of each class's weight on one sample
    order, coef = experts._epoch_batches(data, w, SPEC, torch.Generator().manual_seed(0))
    assert set(order.tolist()) == {0, 12, 24} and len(order) == len(data.labels) and bool((coef == 1).all())
    mean_spec = experts.ExpertSpec(0.05, 8, "none", "mean", 3)
    order, coef = experts._epoch_batches(data, uniform_weights(data.labels), mean_spec, torch.Generator())
    assert sorted(order.tolist()) == list(range(len(data.labels)))
    torch.testing.assert_close(coef, torch.ones(len(order)))  # uniform weights: plain training


def test_expert_cache_hits_misses_and_rebuilds(tmp_path):
    data, net = tiny_data(), tiny_net()
    w = uniform_weights(data.labels)

    def load(count, epochs, weights=w, parallel=1):
        return experts.load_or_train(net, data, weights, SPEC, count, epochs, parallel, tmp_path, "tiny")

    first, report = load(2, 3)
    assert (report.loaded, report.trained, report.rebuilt) == (0, 2, 0)
    again, report = load(3, 2, parallel=2)  # two hits (a shorter prefix), one new expert
    assert (report.loaded, report.trained) == (2, 1)
    torch.testing.assert_close(again[:2], first[:, :3])
    [folder] = tmp_path.glob("experts-*")
    assert sorted(p.name for p in folder.iterdir()) == ["expert-000.pt", "expert-001.pt", "expert-002.pt"]

    (folder / "expert-001.pt").write_bytes(b"not a checkpoint")  # a damaged entry is retrained
    healed, report = load(3, 3)
    assert (report.loaded, report.trained, report.rebuilt) == (1, 2, 2)  # 001 damaged, 002 too short
    torch.testing.assert_close(healed[:2], first, rtol=1e-5, atol=1e-6)

    other = w.clone()
    other[[0, 12, 24]] *= 5  # different weights: different experts, a separate cache entry
    _, report = load(1, 1, weights=other / other.sum() * 3)
    assert report.trained == 1 and len(list(tmp_path.glob("experts-*"))) == 2


def mtt_cfg(**overrides):
    base = dict(ipc=2, iterations=8, net_width=8, net_depth=2, num_experts=2, syn_steps=3, max_start_epoch=2,
                expert_epochs=1, expert_batch=8, dsa_strategy="none")
    return preset("smoke", "mtt").with_overrides(**{**base, **overrides})


def _job(data, cfg, cache_dir=None, stages=None):
    return DistillJob(data, uniform_weights(data.labels), cfg, 0, lambda d, t, l: None,
                      stages.append if stages is not None else (lambda name: None), cache_dir)


def test_mtt_runs_reproducibly_reports_its_stages_and_learns_the_lr(tmp_path):
    data, stages = tiny_data(), []
    cfg = mtt_cfg(iterations=30)
    a = get_method("mtt")(_job(data, cfg, tmp_path, stages))
    b = get_method("mtt")(_job(data, cfg, tmp_path))
    assert stages == ["experts", "distill"]
    assert a.images.shape == (6, 3, 8, 8) and a.labels.tolist() == [0, 0, 1, 1, 2, 2]
    torch.testing.assert_close(a.images, b.images)
    assert a.losses == b.losses and len(a.losses) == 30
    assert (a.info["experts_trained"], b.info["experts_loaded"]) == (2, 2)
    assert a.info["learned_lr"] != cfg.distill.expert_lr and a.info["learned_lr"] > 0
    assert not torch.equal(a.images, data.images[[0, 1, 12, 13, 24, 25]])  # the images moved


def test_a_runaway_learned_lr_is_a_clear_error():
    with pytest.raises(DivergedError, match="learned student lr"):
        get_method("mtt")(_job(tiny_data(), mtt_cfg(lr_lr=1e4, iterations=20)))


def test_mtt_presets_and_validation():
    for name in ("smoke", "quick", "paper"):
        d = validate(preset(name, "mtt")).distill
        assert d.method == "mtt" and d.lr_img >= 10
    assert preset("paper", "mtt").distill.num_experts >= preset("quick", "mtt").distill.num_experts
    for bad, message in (({"num_experts": 0}, "number of experts"), ({"syn_steps": 0}, "synthetic steps"),
                         ({"expert_lr": -1.0}, "expert lr"), ({"lr_lr": float("nan")}, "lr-lr"),
                         ({"max_start_epoch": 0}, "max start epoch"), ({"bf16": "true"}, "bf16")):
        with pytest.raises(ConfigError, match=message):
            validate(preset("smoke", "mtt").with_overrides(**bad))


def test_smoke_run_through_the_cli_reuses_experts(tmp_path, capsys):
    args = ["--preset", "smoke", "--method", "mtt", "--surrogate", "untrained", "--iterations", "3",
            "--device", "cpu", "--runs", str(tmp_path)]
    assert main(["distill", *args]) == 0
    assert main(["distill", *args]) == 0
    assert "unbiased" in capsys.readouterr().out
    runs = sorted(p for p in tmp_path.iterdir() if not p.name.startswith("."))
    metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
    assert [m["experts_trained"] for m in metrics] == [2, 0] and metrics[1]["experts_loaded"] == 2
    assert "experts" in metrics[0]["seconds_per_stage"]
    assert all(runstore.read_status(run).state == "done" for run in runs)

    capsys.readouterr()
    assert main(["cache", "--runs", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "experts-" in listing and "surrogate-" in listing
    assert main(["cache", "--runs", str(tmp_path), "--clear"]) == 0
    assert "cleared" in capsys.readouterr().out and not runstore.cache_dir(tmp_path).exists()
    assert all((run / "synthetic.pt").is_file() for run in runs)  # the runs themselves are untouched
