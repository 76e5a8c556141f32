import threading

import pytest
import torch

from ddcore.config import preset
from ddcore.data import BiasedTensors
from ddcore.evaluate import Accuracy, accuracy, evaluate_set, fit, group_accuracy, summarize
from ddcore.nets import AvgPool2x2, ConvNet, build_convnet


def test_convnet_shapes_and_embed():
    net = ConvNet(num_classes=10, width=16, depth=3, image_size=(28, 28))
    x = torch.rand(4, 3, 28, 28)
    assert net.embed(x).shape == (4, 16 * 3 * 3) and net.embed_dim == 144
    assert net(x).shape == (4, 10)
    assert ConvNet(width=8, depth=2, image_size=(32, 32)).embed_dim == 8 * 8 * 8
    with pytest.raises(ValueError, match="norm"):
        ConvNet(norm="batch")


@pytest.mark.parametrize("size", [(28, 28), (7, 7), (14, 9)])  # odd sides drop the last row/column, as AvgPool2d does
def test_pooling_is_average_pooling_values_and_gradients(size):
    x = torch.randn(5, 4, *size, generator=torch.Generator().manual_seed(0), requires_grad=True)
    got, want = AvgPool2x2()(x), torch.nn.functional.avg_pool2d(x, 2)
    torch.testing.assert_close(got, want)
    g = torch.randn(want.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0])


def test_reset_parameters_is_reproducible_and_fresh():
    a = build_convnet(10, 8, 2, "instance", (28, 28), torch.Generator().manual_seed(0))
    b = build_convnet(10, 8, 2, "instance", (28, 28), torch.Generator().manual_seed(0))
    c = build_convnet(10, 8, 2, "instance", (28, 28), torch.Generator().manual_seed(1))
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)
    bound = 1 / (3 * 9) ** 0.5  # default PyTorch init bound for the first conv
    assert a.features[0].weight.abs().max() <= bound


class Constant(torch.nn.Module):
    def __init__(self, preds):
        super().__init__()
        self.preds = preds

    def forward(self, x):
        return torch.nn.functional.one_hot(self.preds[: len(x)], 2).float()


def test_accuracy_breakdown_on_constructed_predictions():
    labels = torch.tensor([0, 0, 1, 1])
    bias = torch.tensor([0, 1, 1, 0])  # samples 0 and 2 aligned, 1 and 3 conflicting
    test = BiasedTensors(torch.zeros(4, 3, 4, 4), labels, bias, 2)
    acc = accuracy(Constant(torch.tensor([0, 1, 1, 1])), test)
    # groups (class, bias): (0,0) right, (0,1) wrong, (1,1) right, (1,0) right
    assert acc == Accuracy(unbiased=75.0, aligned=100.0, conflicting=50.0, groups=((100.0, 0.0), (100.0, 100.0)))


def test_group_metrics_by_hand_on_a_small_confusion_table():
    # 3 classes x 3 bias values; class 2 has no bias-0 sample, class 1 only bias 1 samples
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    bias = torch.tensor([0, 0, 0, 1, 2, 1, 1, 2, 2, 1, 1])
    correct = torch.tensor([1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0])
    groups = group_accuracy(correct, labels, bias, 3, 3)
    assert groups == ((pytest.approx(200 / 3), 0.0, 100.0), (None, 50.0, None), (None, 50.0, 100.0))
    acc = Accuracy(0.0, 0.0, 0.0, groups)
    assert acc.worst_group == 0.0
    # spreads: class 0: 100 - 0; class 1: one group only (no spread); class 2: 100 - 50
    assert acc.spreads == [100.0, 50.0] and acc.deo_max == 100.0 and acc.deo_mean == 75.0


def test_summarize_mean_and_std():
    a = Accuracy(50, 60, 40, ((100.0, 0.0), (None, 40.0)))
    b = Accuracy(70, 80, 60, ((100.0, 20.0), (None, 60.0)))
    s = summarize([a, b])
    assert s["test_acc_unbiased"] == 60 and s["test_acc_unbiased_std"] == 10
    assert s["test_acc_aligned"] == 70 and s["test_acc_conflicting_std"] == 10
    assert s["group_accuracy"] == [[100.0, 10.0], [None, 50.0]]
    assert s["test_acc_worst_group"] == 10.0 and s["test_acc_worst_group_std"] == 10.0  # 0 and 20
    assert s["deo_max"] == 90.0 and s["deo_mean"] == 90.0  # per model: 100 and 80 (one class spreads)


def test_evaluation_learns_a_tiny_separable_set():
    """Two classes that differ by colour: a few epochs on 8 images must classify the test set."""
    g = torch.Generator().manual_seed(0)
    def make(n):
        labels = torch.arange(2).repeat(n // 2)
        images = torch.rand(n, 3, 8, 8, generator=g) * 0.1
        images[labels == 0, 0] += 0.9  # red
        images[labels == 1, 2] += 0.9  # blue
        return BiasedTensors(images, labels, labels.clone(), 2)
    train, test = make(8), make(40)
    cfg = preset("smoke").with_overrides(net_width=8, net_depth=2, eval_models=2, eval_lr=0.05, dsa_strategy="none")
    metrics = evaluate_set(train.images, train.labels, test, cfg, epochs=30, seed=0)
    assert metrics["test_acc_unbiased"] == 100.0 and len(metrics["test_acc_unbiased_per_model"]) == 2
    assert metrics["test_acc_conflicting"] is None  # this test set has no conflicting samples
    assert metrics["group_accuracy"] == [[100.0, None], [None, 100.0]] and metrics["test_acc_worst_group"] == 100.0
    assert metrics["deo_max"] is None  # no class has two groups in this test set


@pytest.mark.parametrize("epochs, expected", [(1, [0.05]), (2, [0.05, 0.005]), (4, [0.05, 0.05, 0.005, 0.005])])
def test_the_lr_drops_tenfold_after_half_the_epochs(epochs, expected, monkeypatch):
    """The lr each epoch's step used (one batch per epoch); a single epoch runs at the full lr."""
    used = []
    step = torch.optim.SGD.step
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, *a, **k: (used.append(self.param_groups[0]["lr"]),
                                                                        step(self, *a, **k))[1])
    images, labels = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    cfg = preset("smoke").with_overrides(net_width=4, net_depth=1, eval_lr=0.05, dsa_strategy="none")
    fit(images, labels, 2, cfg, epochs, seed=0)
    assert used == pytest.approx(expected)

def test_surrogate_init_ignores_the_global_rng():
    from ddcore.surrogate import SurrogateSpec, build_surrogate

    spec = SurrogateSpec("supcon", 0, 0.1, 8, 8, 2, "instance", 0.1)
    torch.manual_seed(1)
    a = build_surrogate(spec, 10, (3, 28, 28), torch.Generator().manual_seed(0))
    torch.manual_seed(2)
    b = build_surrogate(spec, 10, (3, 28, 28), torch.Generator().manual_seed(0))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


@pytest.fixture
def two_threads():
    """Two torch threads (side by side needs threads to share), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def small_cmnist() -> tuple[BiasedTensors, BiasedTensors]:
    """The bundled coloured MNIST: 60 training images, 300 test images."""
    from ddcore.config import DataConfig
    from ddcore.data import load_biased
    train, test = load_biased(DataConfig(), True, 0), load_biased(DataConfig(), False, 0)
    return (BiasedTensors(train.images[:60], train.labels[:60], train.bias[:60], train.num_classes),
            BiasedTensors(test.images[:300], test.labels[:300], test.bias[:300], test.num_classes))


def test_models_trained_side_by_side_match_one_after_the_other(two_threads, monkeypatch):
    """Three models in three threads (one torch thread each) give exactly the numbers that the
    same models give trained one after the other with one thread: a model's numbers do not depend
    on the others. Progress counts every model's epochs, never backwards, up to the total."""
    train, test = small_cmnist()
    cfg = preset("smoke").with_overrides(eval_models=3, net_width=8, net_depth=2)
    calls, threads = [], set()

    def progress(done, total, loss):
        calls.append((done, total))
        threads.add((threading.get_ident(), torch.get_num_threads()))

    side = evaluate_set(train.images, train.labels, test, cfg, epochs=6, seed=0, progress=progress)
    assert len(threads) == 3 and all(ident != threading.get_ident() and n == 1 for ident, n in threads)
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1] == (18, 18) and len(calls) == 18

    monkeypatch.setattr("ddcore.hardware.side_by_side_threads", lambda jobs, device: None)
    torch.set_num_threads(1)
    one_by_one = evaluate_set(train.images, train.labels, test, cfg, epochs=6, seed=0)
    assert side == one_by_one


def test_a_failing_model_stops_the_others_and_its_error_is_raised(two_threads, monkeypatch):
    """One model raising (a cancel, say) ends the evaluation at once with that error: the other
    models stop at their next epoch instead of training on."""
    import ddcore.evaluate as evaluate
    from ddcore.errors import Cancelled

    train, test = small_cmnist()
    cfg = preset("smoke").with_overrides(eval_models=3, net_width=8, net_depth=2)
    epochs_run = []
    real = evaluate.train_classifier

    def train_classifier(images, labels, num_classes, cfg, epochs, seed, progress):
        def report(done, total, loss):
            epochs_run.append(seed)
            if seed == 2000 and done == 2:  # the second model, at its second epoch
                raise Cancelled("cancelled by the user")
            progress(done, total, loss)
        return real(images, labels, num_classes, cfg, epochs, seed, report)

    monkeypatch.setattr(evaluate, "train_classifier", train_classifier)
    with pytest.raises(Cancelled, match="cancelled by the user"):
        evaluate_set(train.images, train.labels, test, cfg, epochs=500, seed=0)
    assert len(epochs_run) < 100  # 1,500 epochs if the others trained on
