"""The GPU path (run by bench/gpu_check.sh with `pytest -m cuda`; skipped without a GPU): every
method and every debiasing method end to end on CUDA, DM's unchunked real side against the CPU,
and auto precision."""
import pytest
import torch

from ddcore import augment, hardware, runstore
from ddcore.config import preset
from ddcore.methods.dm import real_means
from ddcore.nets import ConvNet, cpu_chunk
from ddcore.pipeline import execute_run
from ddcore.records import SyntheticImages

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


@pytest.mark.parametrize("method", ["dm", "dc", "dsa", "mtt"])
def test_every_method_runs_end_to_end_on_cuda(tmp_path, method):
    cfg = preset("smoke", method).with_overrides(device="cuda", map_points=200)
    metrics = execute_run(runstore.create_run(tmp_path / method, cfg))
    assert metrics.device.startswith("cuda") and metrics.gpu == torch.cuda.get_device_name()
    assert 0 <= metrics.test_acc_unbiased <= 100
    assert torch.isfinite(SyntheticImages.load(tmp_path / method).images).all()


@pytest.mark.parametrize("method", ["lff", "jtt", "selecmix", "selecmix-lff"])
def test_every_debiasing_method_runs_on_cuda(tmp_path, method):
    """The evaluation and the surrogate trained with each method: generators, helper networks
    and per-sample state on the GPU."""
    cfg = preset("smoke").with_overrides(device="cuda", map_points=200, eval_debias=method, surrogate="ce",
                                         surrogate_debias=method)
    metrics = execute_run(runstore.create_run(tmp_path / method, cfg))
    assert metrics.device.startswith("cuda") and 0 <= metrics.test_acc_unbiased <= 100


def test_dm_takes_the_real_batch_whole_on_cuda_and_matches_the_cpu():
    net = ConvNet(10, 3, 32, 3, "instance", (28, 28)).reset_parameters(torch.Generator().manual_seed(0))
    images = torch.rand(200, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    idx = torch.arange(200).view(10, 20)
    coef = torch.full((10, 20), 1 / 20)
    params = augment.sample_params("color_crop_cutout_scale_rotate", torch.Generator().manual_seed(2))
    on_gpu = net.to(CUDA)
    assert cpu_chunk(on_gpu, images.to(CUDA)) == 0
    gpu = real_means(on_gpu, images.to(CUDA), idx.to(CUDA), coef.to(CUDA), params, 0).cpu()
    cpu = real_means(net.cpu(), images, idx, coef, params, cpu_chunk(net.cpu(), images))
    torch.testing.assert_close(gpu, cpu, atol=1e-3, rtol=1e-3)  # TF32 convolutions on the GPU


def test_compiled_dm_matches_eager_on_cuda():
    from test_dm import tiny_data  # tests/ is on sys.path (pytest rootdir insertion)

    from ddcore.density import uniform_weights
    from ddcore.methods import DistillJob, get_method

    data = tiny_data(n_per_class=20).to(CUDA)
    cfg = preset("smoke").with_overrides(ipc=2, iterations=5, batch_real=8, net_width=8, net_depth=2)
    out = {on: get_method("dm")(DistillJob(data, uniform_weights(data.labels), cfg, 0, lambda *a: None,
                                           compile=hardware.Compilation(on, "test"))).images for on in (False, True)}
    torch.testing.assert_close(out[True], out[False], atol=1e-3, rtol=1e-3)


def test_auto_precision_on_cuda_is_measured_and_cached(tmp_path):
    from test_dm import tiny_data  # tests/ is on sys.path (pytest rootdir insertion)

    from ddcore.density import uniform_weights
    from ddcore.methods import DistillJob, job_precision

    data = tiny_data(n_per_class=20).to(CUDA)
    cfg = preset("smoke").with_overrides(ipc=2, batch_real=8, net_width=8, net_depth=2)
    job = DistillJob(data, uniform_weights(data.labels), cfg, 0, lambda *a: None)
    choice = job_precision(job, "auto", tmp_path)
    assert ("measured" in choice.reason) == torch.cuda.is_bf16_supported()
    assert len(list(tmp_path.glob("precision-*.json"))) == int(torch.cuda.is_bf16_supported())
    again = job_precision(job, "auto", tmp_path)
    assert again == choice
