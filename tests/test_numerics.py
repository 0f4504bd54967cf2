"""Pinned numeric paths: the environment they set, and that they make training independent of the dispatch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vidsme import numerics

ROOT = Path(__file__).resolve().parents[1]


def test_pinned_env_selects_avx2_everywhere_and_fixes_threads() -> None:
    env = numerics.pinned_env(threads=3)
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and env["MKL_CBWR"] == "COMPATIBLE"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env[numerics.ENV_THREADS] == "3"
    with pytest.raises(ValueError, match="numerics.threads"):
        numerics.pinned_env(threads=0)


def test_pin_environment_overrides_and_reports_what_it_changed() -> None:
    environ = {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"}
    before = numerics.pin_environment(environ, threads=1)
    assert environ["ATEN_CPU_CAPABILITY"] == "avx2"
    assert before["ATEN_CPU_CAPABILITY"] == "default" and "OMP_NUM_THREADS" not in before  # unchanged value
    assert before["MKL_CBWR"] is None  # was unset


def test_unpinned_process_is_left_alone_and_not_guaranteed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(numerics.ENV_PIN, raising=False)
    assert numerics.apply_in_process() == {}
    ok, why = numerics.guaranteed()
    assert not ok and "numerics.pin is off" in why


def test_guarantee_needs_x86_64_with_avx2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(numerics.ENV_PIN, "1")
    monkeypatch.setattr(numerics.platform, "machine", lambda: "aarch64")
    assert numerics.guaranteed() == (False, "aarch64 is not x86-64: kernels differ, compare within tolerances")
    monkeypatch.setattr(numerics.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(numerics, "cpu_flags", lambda: ["avx", "fma"])
    assert not numerics.guaranteed()[0]
    monkeypatch.setattr(numerics, "cpu_flags", lambda: ["avx", "avx2", "fma"])
    assert numerics.guaranteed()[0]


@pytest.mark.slow
def test_pinning_makes_training_independent_of_the_kernel_dispatch() -> None:
    """Two unpinned dispatch settings train different weights; pinned runs started from either are identical.

    PyTorch's generic ("default") kernels exist on every x86-64 machine, next to the machine's best ones, so
    the two unpinned settings differ wherever the machine has AVX2."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_numerics as b

    cfg = {**b.QUICK, "synth": {**b.QUICK["synth"], "n_eval": 8, "n_pretrain": 4}, "train": {**b.QUICK["train"], "epochs": 2},
           "n_pass": 2}
    runs = {(name, pin): b.run(b.SETTINGS[name], pin, cfg) for name in ("default", "aten_default") for pin in (False, True)}
    assert runs[("default", False)]["torch_capability"] != "DEFAULT" and runs[("aten_default", False)]["torch_capability"] == "DEFAULT"
    assert runs[("default", False)]["weights"] != runs[("aten_default", False)]["weights"]  # the mechanism
    assert runs[("default", True)]["torch_capability"] == runs[("aten_default", True)]["torch_capability"] == "AVX2"
    for key in ("weights", "dump", "decoded", "k1", "member_loss"):
        assert runs[("default", True)][key] == runs[("aten_default", True)][key], key
