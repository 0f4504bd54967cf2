"""Pinned numeric paths: the same numbers on every x86-64 machine with AVX2.

CPU libraries pick their kernels at run time from the instruction set they find, and a different
kernel rounds differently; training amplifies one-ulp differences into different weights, hence
different tables (measured: docs/numerics.md). Pinning every library to the AVX2 code path, and
every job to the same thread count, makes an AVX-512 machine compute what an AVX2 one does.

- `pinned_env(threads)`: the environment variables (read once, when each library loads, so they
  must be in the environment before a job process imports torch / numpy / cv2);
- `pin_environment(environ, threads)`: set them (the Snakefile does, so every job inherits them);
- `apply_in_process()`: what cannot be set from the environment (thread pools that Snakemake sets
  from a rule's `threads:`, which `--cores` may scale), called by every workflow step;
- `effective()`: what each library really uses, for `provenance.json` and the check.
"""

from __future__ import annotations

import os
import platform
from collections.abc import MutableMapping
from typing import Any

ENV_PIN = "VIDSME_NUMERICS_PIN"  # "1": this process tree runs pinned
ENV_THREADS = "VIDSME_NUMERICS_THREADS"  # intra-op threads of every numeric library, in every job


def pinned_env(threads: int = 1) -> dict[str, str]:
    """Environment variables that select the AVX2 code path of each library, and fix thread counts."""
    if int(threads) < 1:
        raise ValueError(f"numerics.threads must be >= 1, got {threads!r}")
    t = str(int(threads))
    return {
        "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's vectorised kernels (softmax, reductions, elementwise)
        # MKL's BLAS (PyTorch's float32 matmul on CPU): its AVX2 branch is Intel-only (an AMD CPU takes another
        # path whatever MKL_CBWR says, measured), COMPATIBLE is the one path every x86-64 vendor shares
        "MKL_CBWR": "COMPATIBLE",
        "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN primitives (PyTorch's bf16 and some fused paths)
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # NumPy's SIMD math (exp, log, sin, power)
        "OPENCV_CPU_DISABLE": "AVX512-SKX",  # OpenCV's dispatched kernels (optical flow, resize)
        "OPENBLAS_CORETYPE": "Haswell",  # NumPy's OpenBLAS (scikit-learn's linear algebra)
        "OMP_NUM_THREADS": t,
        "MKL_NUM_THREADS": t,
        "OPENBLAS_NUM_THREADS": t,
        ENV_PIN: "1",
        ENV_THREADS: t,
    }


def pin_environment(environ: MutableMapping[str, str] | None = None, threads: int = 1) -> dict[str, str]:
    """Set the pinned variables in `environ` (default `os.environ`), overriding what was there.

    Returns the previous values of the variables it changed (None = unset), for the log."""
    environ = os.environ if environ is None else environ
    before: dict[str, str] = {}
    for k, v in pinned_env(threads).items():
        if environ.get(k) != v:
            before[k] = environ.get(k)  # type: ignore[assignment]
        environ[k] = v
    return before


def apply_in_process() -> dict[str, Any]:
    """In a job process of a pinned run: fix the thread pools that Snakemake sizes from `threads:`.

    A no-op (returning {}) when the run is not pinned. Checks that PyTorch, if already imported,
    really runs the AVX2 path (the environment must be pinned before torch is first imported)."""
    if os.environ.get(ENV_PIN) != "1":
        return {}
    n = int(os.environ.get(ENV_THREADS, "1"))
    import sys

    out: dict[str, Any] = {"threads": n}
    try:
        import torch

        torch.set_num_threads(n)
        cap = torch.backends.cpu.get_cpu_capability()
        if cap not in ("AVX2", "DEFAULT"):
            raise RuntimeError(f"numerics pinned to AVX2 but PyTorch runs its {cap} kernels: torch was imported "
                               f"before the environment was pinned (ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY')})")
        out["torch_capability"] = cap
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if "cv2" in sys.modules or _importable("cv2"):
        import cv2

        cv2.setNumThreads(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)  # BLAS/OpenMP pools already loaded (numpy's OpenBLAS)
    except ImportError:  # pragma: no cover - scikit-learn brings it
        pass
    return out


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def cpu_flags() -> list[str]:
    """The CPU's vector extensions that matter here (from /proc/cpuinfo on Linux)."""
    want = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [w for w in want if w in have]
    except OSError:
        pass
    return []


def guaranteed(pinned: bool | None = None) -> tuple[bool, str]:
    """Whether this machine can reproduce the pinned numbers exactly, and why (or why not).

    `pinned`: whether the run in question was pinned (default: whether this process is)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return False, f"{platform.machine()} is not x86-64: kernels differ, compare within tolerances"
    flags = cpu_flags()
    if flags and not {"avx2", "fma"} <= set(flags):
        return False, "this CPU lacks AVX2/FMA: the pinned AVX2 path is not available here"
    if not (os.environ.get(ENV_PIN) == "1" if pinned is None else pinned):
        return False, "numerics.pin is off: each library picks its own kernels"
    return True, "x86-64 with AVX2, pinned: exact"


def effective() -> dict[str, Any]:
    """What each numeric library really uses in this process (import them first)."""
    info: dict[str, Any] = {"machine": platform.machine(), "cpu_flags": cpu_flags(),
                            "pinned": os.environ.get(ENV_PIN) == "1",
                            "env": {k: os.environ.get(k) for k in pinned_env() if not k.startswith("VIDSME")}}
    try:
        import torch

        info["torch_capability"] = torch.backends.cpu.get_cpu_capability()
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    try:
        import numpy as np
        from numpy._core._multiarray_umath import __cpu_features__

        info["numpy"] = np.__version__
        info["numpy_simd_disabled"] = os.environ.get("NPY_DISABLE_CPU_FEATURES", "")
        info["numpy_avx512"] = bool(__cpu_features__.get("AVX512F"))
    except ImportError:  # pragma: no cover
        pass
    try:
        import cv2

        info["opencv_features"] = cv2.getCPUFeaturesLine()
    except ImportError:  # pragma: no cover
        pass
    ok, why = guaranteed()
    info["exact"], info["exact_reason"] = ok, why
    return info
