"""Precision and threads by capability (ddcore.hardware): bf16 only where the device runs it faster."""
import json

import pytest
import torch

from ddcore import hardware
from ddcore.config import RunConfig, preset, validate
from ddcore.errors import ConfigError

CPU = torch.device("cpu")


def cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    return path


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    assert hardware.cpu_flags(cpuinfo(tmp_path, "fpu sse2 avx2 fma")) == {"fpu", "sse2", "avx2", "fma"}
    assert hardware.cpu_flags(tmp_path / "missing") is None


@pytest.mark.parametrize("flags, bf16", [("sse2 avx2 fma", False),  # the AVX2-only EPYC where bf16 was 5.7x slower
                                         ("avx2 avx512f avx512bw", False),  # AVX-512 without its bf16 extension
                                         ("avx2 avx512f avx512_bf16", True), ("avx2 amx_tile amx_bf16", True)])
def test_auto_uses_bf16_only_on_cpus_with_native_bf16(tmp_path, monkeypatch, flags, bf16):
    read = hardware.cpu_flags(cpuinfo(tmp_path, flags))
    monkeypatch.setattr(hardware, "cpu_flags", lambda: read)
    choice = hardware.resolve_precision("auto", CPU, "dm")
    assert choice.bf16 is bf16 and choice.name == ("bf16" if bf16 else "fp32")
    assert ("lacks" in choice.reason) is not bf16


def test_explicit_choices_and_other_methods(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert hardware.resolve_precision("true", CPU, "dm").bf16
    assert not hardware.resolve_precision("false", CPU, "dm").bf16
    for method in ("dc", "dsa", "mtt"):  # their loops never autocast
        assert not hardware.resolve_precision("auto", CPU, method).bf16


def test_unknown_flags_fall_back_to_a_measurement_cached_per_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: None)
    calls = []

    def measure():
        calls.append(1)
        return 3.0  # bf16 three times slower, as on an AVX2-only CPU

    monkeypatch.setattr(hardware, "_measure_bf16_ratio", lambda device: measure())
    first = hardware.resolve_precision("auto", CPU, "dm", tmp_path)
    assert not first.bf16 and "3.00x" in first.reason
    cached = list(tmp_path.glob("precision-*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["bf16_over_fp32"] == 3.0
    assert not hardware.resolve_precision("auto", CPU, "dm", tmp_path).bf16 and len(calls) == 1  # read back
    cached[0].write_text("{not json")
    hardware.resolve_precision("auto", CPU, "dm", tmp_path)
    assert len(calls) == 2  # a damaged entry is measured again, never trusted


def test_the_micro_benchmark_returns_a_positive_ratio():
    ratio = hardware._measure_bf16_ratio.__wrapped__("cpu")
    assert 0 < ratio < 100


def test_config_bf16_modes_and_migration():
    assert all(preset(name, m).distill.bf16 == "auto" for name in ("smoke", "quick", "paper") for m in ("dm", "mtt"))
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
