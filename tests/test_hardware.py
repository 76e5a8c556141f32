"""Precision and threads by capability (ddcore.hardware): bf16 only where the device runs it faster."""
import json

import pytest
import torch

from ddcore import hardware
from ddcore.config import RunConfig, preset, validate
from ddcore.errors import ConfigError
from ddcore.pipeline import preflight

CPU = torch.device("cpu")


def cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    return path


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    assert hardware.cpu_flags(cpuinfo(tmp_path, "fpu sse2 avx2 fma")) == {"fpu", "sse2", "avx2", "fma"}
    assert hardware.cpu_flags(tmp_path / "missing") is None


def fake_probe(bf16_seconds: float, calls: list[str] | None = None, real_seconds: float | None = None):
    """A probe whose fp32 iteration takes 1 s, bf16 `bf16_seconds` and bf16 on the real side only
    `real_seconds` (default: as bf16)."""
    def probe(precision: hardware.Precision) -> float:
        if calls is not None:
            calls.append(precision.name)
        if precision.real_only:
            return bf16_seconds if real_seconds is None else real_seconds
        return bf16_seconds if precision.bf16 else 1.0
    return probe


@pytest.mark.parametrize("flags, bf16_seconds, bf16", [
    ("sse2 avx2 fma", 0.5, False),  # no native bf16 (the AVX2-only EPYC, 5.7x slower): fp32, not even measured
    ("avx2 avx512f avx512bw", 0.5, False),  # AVX-512 without its bf16 extension
    ("avx2 avx512f avx512_bf16", 0.5, True),  # native and measured faster
    ("avx2 amx_tile amx_bf16", 2.0, False),  # native but measured slower (the Xeon of bench/RESULTS.md section 8)
    ("avx2 amx_tile amx_bf16", 0.95, False)])  # a near tie is not worth bf16's rounding
def test_auto_measures_bf16_where_the_cpu_has_it(tmp_path, monkeypatch, flags, bf16_seconds, bf16):
    read = hardware.cpu_flags(cpuinfo(tmp_path, flags))
    monkeypatch.setattr(hardware, "cpu_flags", lambda: read)
    monkeypatch.setattr(hardware, "_RATIOS", {})
    calls: list[str] = []
    choice = hardware.resolve_precision("auto", CPU, "dm", fake_probe(bf16_seconds, calls), sizes=flags)
    assert choice.bf16 is bf16 and choice.name == ("bf16" if bf16 else "fp32")
    native = "bf16" in flags
    assert ("lacks" in choice.reason) is not native and bool(calls) is native
    if native:
        assert f"{bf16_seconds:.2f}x" in choice.reason
        assert sorted(calls) == ["bf16", "bf16", "bf16-real", "bf16-real", "fp32", "fp32"]


@pytest.mark.parametrize("bf16_seconds, real_seconds, name", [
    (1.2, 0.6, "bf16-real"),  # the Xeon at IPC 50 after the pooling fix: whole-loop bf16 slower, real side faster
    (0.5, 0.7, "bf16"),
    (1.2, 0.95, "fp32")])
def test_auto_also_measures_bf16_on_the_real_side_only(monkeypatch, bf16_seconds, real_seconds, name):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setattr(hardware, "_RATIOS", {})
    choice = hardware.resolve_precision("auto", CPU, "dm", fake_probe(bf16_seconds, real_seconds=real_seconds),
                                        sizes=name)
    assert choice.name == name and f"real side only {real_seconds:.2f}x" in choice.reason
    with choice.autocast(CPU):  # the differentiated side: bf16 only in plain bf16
        assert torch.is_autocast_enabled("cpu") is (name == "bf16")
    with choice.real_autocast(CPU):  # the gradient-free real side: bf16 in both bf16 modes
        assert torch.is_autocast_enabled("cpu") is (name != "fp32")


def test_explicit_choices_and_other_methods(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    never = fake_probe(0.1, calls := [])
    assert hardware.resolve_precision("true", CPU, "dm", never).bf16
    assert not hardware.resolve_precision("false", CPU, "dm", never).bf16
    for method in ("dc", "dsa", "mtt"):  # their loops never autocast
        assert not hardware.resolve_precision("auto", CPU, method, never).bf16
    assert calls == []


def test_the_measurement_is_cached_per_machine_and_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: None)  # flags unknown: measured
    monkeypatch.setattr(hardware, "_RATIOS", {})
    calls: list[str] = []
    first = hardware.resolve_precision("auto", CPU, "dm", fake_probe(3.0, calls), tmp_path, "ipc 10")
    assert not first.bf16 and "3.00x" in first.reason and len(calls) == 6
    cached = list(tmp_path.glob("precision-*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["over_fp32"] == {"bf16": 3.0, "bf16-real": 3.0}
    monkeypatch.setattr(hardware, "_RATIOS", {})  # a new process reads the file back
    assert not hardware.resolve_precision("auto", CPU, "dm", fake_probe(3.0, calls), tmp_path, "ipc 10").bf16
    assert len(calls) == 6
    assert hardware.resolve_precision("auto", CPU, "dm", fake_probe(0.5, calls), tmp_path, "ipc 50").bf16
    assert len(calls) == 12 and len(list(tmp_path.glob("precision-*.json"))) == 2  # other sizes, measured apart
    for damaged in ("{not json", '{"bf16_over_fp32": 3.0}'):  # unreadable; written before bf16-real existed
        cached[0].write_text(damaged)
        monkeypatch.setattr(hardware, "_RATIOS", {})
        calls.clear()
        hardware.resolve_precision("auto", CPU, "dm", fake_probe(3.0, calls), tmp_path, "ipc 10")
        assert len(calls) == 6  # measured again, never trusted


def test_the_probe_times_the_methods_own_loop(monkeypatch):
    from test_dm import tiny_data  # tests/ is on sys.path (pytest rootdir insertion)

    from ddcore.density import uniform_weights
    from ddcore.methods import DistillJob, job_precision, precision_probe

    data = tiny_data(n_per_class=20)
    cfg = preset("smoke").with_overrides(ipc=2, iterations=500, batch_real=8, net_width=8, net_depth=2, compile="true")
    ticks: list[int] = []
    job = DistillJob(data, uniform_weights(data.labels), cfg, 0, lambda done, total, loss: ticks.append(done))
    probe, sizes = precision_probe(job)
    seconds = probe(hardware.Precision(False, "fp32"))
    assert 0 < seconds < 5 and ticks == []  # a few iterations, not the run's 500; the job's own progress untouched
    assert "ipc 2" in sizes and "batch 8" in sizes and "net 8x2" in sizes
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setattr(hardware, "_RATIOS", {})
    choice = job_precision(job, "auto")
    assert choice.reason.startswith("measured: bf16 takes") and "dm iteration" in choice.reason


def test_config_bf16_modes_and_migration():
    assert all(preset(name, m).distill.bf16 == "auto" for name in ("quick", "paper") for m in ("dm", "mtt"))
    assert preset("smoke").distill.bf16 == "false"  # tests compare smoke runs across processes: no timing choice
    with pytest.raises(ConfigError, match="bf16 mode"):
        validate(preset("smoke").with_overrides(bf16="yes please"))
    old = preset("quick").to_dict()
    old["distill"]["bf16"] = True  # config.json written before bf16 became auto|true|false
    assert RunConfig.from_dict(old).distill.bf16 == "true"


def test_threads_follow_the_usable_cpus_unless_the_user_chose(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert hardware.configure_threads() == hardware.usable_cpus()
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        assert hardware.configure_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_allocator_keeps_freed_memory_unless_the_user_set_glibc_s_own_variables(monkeypatch):
    import ctypes
    import platform

    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    monkeypatch.setattr(platform, "libc_ver", lambda: ("glibc", "2.36"))
    for name in hardware.MALLOC_ENV:
        monkeypatch.delenv(name, raising=False)
    assert hardware.configure_allocator() is True
    assert calls == [(-3, hardware.MMAP_THRESHOLD), (-1, hardware.TRIM_THRESHOLD)]
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert hardware.configure_allocator() is False and len(calls) == 2
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))  # musl, macOS: nothing to set
    assert hardware.configure_allocator() is False and len(calls) == 2


def test_glibc_accepts_the_thresholds():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert hardware.configure_allocator() is True


def test_compile_needs_a_cxx_compiler(monkeypatch, tmp_path, capsys):
    """Without one, torch.compile fails at the first iteration deep inside inductor; say so up front."""
    from test_cli import main_in_process  # tests/ is on sys.path (pytest rootdir insertion)

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no compiler on PATH
    assert hardware.cxx_compiler() is None
    with pytest.raises(ConfigError, match="--compile needs a C\\+\\+ compiler"):
        preflight(preset("smoke").with_overrides(compile="true"))
    # a run made on a machine with one still reads as a record here: the check is of the machine
    assert validate(preset("smoke").with_overrides(compile="true")).distill.compile == "true"
    code, _, err = main_in_process(capsys, "distill", "--preset", "smoke", "--compile", "true", "--runs",
                                   str(tmp_path / "runs"))
    assert code == 2 and "apt-get install g++" in err and "Traceback" not in err and not (tmp_path / "runs").exists()
    fake = tmp_path / "clang++"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert hardware.cxx_compiler() == str(fake)
    assert validate(preset("smoke").with_overrides(compile="true")).distill.compile == "true"
    # auto never needs one: without it, a long run stays eager and says why
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    long = hardware.resolve_compile("auto", CPU, "dm", 20000, works=lambda: None)
    assert not long.on and "no C++ compiler" in long.reason


def never(reason="not asked"):
    def works():
        raise AssertionError(reason)
    return works


def test_auto_compiles_long_cpu_runs_where_compiling_works(monkeypatch):
    monkeypatch.setattr(hardware, "cxx_compiler", lambda: "/usr/bin/g++")
    threshold = hardware.COMPILE_MIN_ITERATIONS
    short = hardware.resolve_compile("auto", CPU, "dm", threshold - 1, works=never())
    assert not short.on and f"{threshold - 1} iterations" in short.reason
    assert hardware.resolve_compile("auto", CPU, "dm", threshold, works=lambda: None).on
    broken = hardware.resolve_compile("auto", CPU, "dm", 20000, works=lambda: "CalledProcessError: Python.h not found")
    assert not broken.on and "Python.h not found" in broken.reason
    gpu = hardware.resolve_compile("auto", torch.device("cuda"), "dm", 20000, works=never())
    assert not gpu.on and "unmeasured" in gpu.reason
    assert not hardware.resolve_compile("auto", CPU, "mtt", 20000, works=never()).on  # DC, DSA, MTT run eager
    assert hardware.resolve_compile("true", torch.device("cuda"), "dm", 10, works=never()).on  # forced: no questions
    assert not hardware.resolve_compile("false", CPU, "dm", 20000, works=never()).on


def test_a_toolchain_that_cannot_compile_means_eager_once_asked(monkeypatch):
    """A compiler on PATH can still fail (no Python headers, a broken install): the check compile
    fails, the run stays eager and says why, and the process does not ask again."""
    calls = []

    def broken(module):
        calls.append(module)
        raise RuntimeError("InductorError: fatal error: Python.h: No such file or directory\ncompilation terminated.")

    monkeypatch.setattr(hardware, "_COMPILE_WORKS", [])
    monkeypatch.setattr(hardware, "cxx_compiler", lambda: "/usr/bin/g++")
    monkeypatch.setattr(torch, "compile", broken)
    for _ in range(2):
        decision = hardware.resolve_compile("auto", CPU, "dm", 20000)
        assert not decision.on and decision.reason == ("eager: torch.compile fails on this machine (RuntimeError: "
                                                       "InductorError: fatal error: Python.h: No such file or directory)")
    assert len(calls) == 1


def test_config_compile_modes_and_migration(capsys, tmp_path):
    from test_cli import main_in_process  # tests/ is on sys.path (pytest rootdir insertion)

    assert all(preset(name, m).distill.compile == "auto" for name in ("smoke", "quick", "full", "paper")
               for m in ("dm", "mtt"))
    with pytest.raises(ConfigError, match="compile mode"):
        validate(preset("smoke").with_overrides(compile="fast"))
    code, _, err = main_in_process(capsys, "distill", "--preset", "smoke", "--compile", "fast", "--runs",
                                   str(tmp_path / "runs"))
    assert code == 2 and "compile mode" in err and "Traceback" not in err and not (tmp_path / "runs").exists()
    old = preset("quick").to_dict()
    old["distill"]["compile"] = False  # config.json written before compile became auto|true|false
    assert RunConfig.from_dict(old).distill.compile == "false"


@pytest.mark.skipif(hardware.cxx_compiler() is None, reason="torch.compile on a CPU needs a C++ compiler")
def test_compiled_dm_matches_eager_on_cpu():
    """What auto turns on for long CPU runs: the same synthetic images as eager, up to float rounding
    (inductor fuses the norm and the pooling, reordering their sums)."""
    from test_dm import tiny_data  # tests/ is on sys.path (pytest rootdir insertion)

    from ddcore.density import uniform_weights
    from ddcore.methods import DistillJob, get_method

    assert hardware.compile_works() is None
    data = tiny_data(n_per_class=20)
    cfg = preset("smoke").with_overrides(ipc=2, iterations=4, batch_real=8, net_width=8, net_depth=2)

    def run(on: bool, iterations: int = 4) -> torch.Tensor:
        job = DistillJob(data, uniform_weights(data.labels), cfg.with_overrides(iterations=iterations), 0,
                         lambda *a: None, compile=hardware.Compilation(on, "test"))
        return get_method("dm")(job).images

    eager, compiled = run(False), run(True)
    assert (eager - run(False, iterations=0)).abs().max() > 1e-2  # the images moved: the comparison means something
    torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("jobs, threads, device, each", [
    (3, 2, "cpu", 1),  # more jobs than threads: one each, sharing the cores
    (3, 8, "cpu", 2),
    (1, 8, "cpu", None),  # nothing to run beside it
    (3, 1, "cpu", None),  # one thread (OMP_NUM_THREADS=1, a Ray cell's one CPU): no more than that
    (3, 8, "cuda", None),  # a GPU runs them one after the other
])
def test_side_by_side_threads(monkeypatch, jobs, threads, device, each):
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    assert hardware.side_by_side_threads(jobs, torch.device(device)) == each
