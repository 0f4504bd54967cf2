#!/usr/bin/env bash
# GPU check (< 8 minutes on one GPU): the CUDA smoke test (scripts/gpu_smoke.py, tiny model, CUDA vs CPU
# float32) and the paper-scale benchmark (benchmarks/bench_paper_scale.py: full-depth 7B-shaped models of
# the four families, 16 frames, bfloat16), written together as ONE JSON.
#
#   scripts/gpu_check.sh [--out FILE] [--videos N] [--python PY]   on a machine with CUDA
#   scripts/gpu_check.sh --dry-run [--out FILE]                     anywhere: checks the environment, writes
#                                                                   the plan (commands, time limits) as JSON
#   scripts/gpu_check.sh --cpu [--out FILE]                         runs both steps on the CPU in their
#                                                                   smallest modes (tests the script end to end)
# Exit status: 0 all passed; 1 a step failed (the JSON says which); 2 bad arguments; 3 no CUDA device.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/benchmarks/out/gpu_check.json"
PY="${PYTHON:-python}"
MODE=cuda
VIDEOS=16
SMOKE_LIMIT=120   # seconds
BENCH_LIMIT=330   # seconds; the benchmark rewrites its JSON after each family, so a cut run keeps results

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --videos) VIDEOS="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    --dry-run) MODE=dry; shift ;;
    --cpu) MODE=cpu; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$VIDEOS" =~ ^[1-9][0-9]*$ ]] || { echo "gpu_check: --videos must be a positive integer, got '$VIDEOS'" >&2; exit 2; }
command -v "$PY" >/dev/null 2>&1 || { echo "gpu_check: python interpreter '$PY' not found (set PYTHON or --python)" >&2; exit 2; }

cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
CUDA_INFO="$("$PY" -c 'import torch; c = torch.cuda.is_available(); print(int(c), torch.cuda.get_device_name(0) if c else "none", torch.__version__, sep="|")')" \
  || { echo "gpu_check: '$PY' cannot import torch (activate the project's environment)" >&2; exit 2; }
IFS='|' read -r HAS_CUDA GPU_NAME TORCH_VERSION <<<"$CUDA_INFO"
if [[ "$MODE" == cuda && "$HAS_CUDA" != 1 ]]; then
  echo "gpu_check: no CUDA device visible to torch ${TORCH_VERSION:-?} (torch.cuda.is_available() is False)." >&2
  echo "gpu_check: run it on a machine with an NVIDIA GPU, or use --dry-run / --cpu to test the script here." >&2
  exit 3
fi

if [[ "$MODE" != cpu ]]; then  # --dry-run shows the CUDA plan
  SMOKE=("$PY" scripts/gpu_smoke.py --device cuda)
  BENCH=("$PY" benchmarks/bench_paper_scale.py --device cuda --frames 16 --videos "$VIDEOS" --batch 8 --layers 0
         --families qwen2_5_vl llava_next_video llava_onevision video_llava)
else
  SMOKE=("$PY" scripts/gpu_smoke.py --device cpu --videos 1 --frames 4)
  BENCH=("$PY" benchmarks/bench_paper_scale.py --device cpu --quick)
  SMOKE_LIMIT=240 BENCH_LIMIT=900  # the CPU run tests the script, not a lease (a loaded CI run got no result within 330 s)
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$(dirname "$OUT")"
START=$(date +%s)
SMOKE_RC=-1
BENCH_RC=-1
if [[ "$MODE" != dry ]]; then
  echo "gpu_check: smoke test (limit ${SMOKE_LIMIT} s): ${SMOKE[*]}"
  SMOKE_RC=0
  timeout "$SMOKE_LIMIT" "${SMOKE[@]}" --out "$WORK/smoke" >"$WORK/smoke.log" 2>&1 || SMOKE_RC=$?
  tail -n 12 "$WORK/smoke.log"
  echo "gpu_check: paper-scale benchmark (limit ${BENCH_LIMIT} s): ${BENCH[*]}"
  BENCH_RC=0
  timeout "$BENCH_LIMIT" "${BENCH[@]}" --out "$WORK/paper_scale.json" >"$WORK/bench.log" 2>&1 || BENCH_RC=$?
  tail -n 6 "$WORK/bench.log"
fi
END=$(date +%s)

"$PY" - "$OUT" "$MODE" "$WORK" "$SMOKE_RC" "$BENCH_RC" "$((END - START))" "$HAS_CUDA" "$GPU_NAME" \
  "${SMOKE[*]}" "${BENCH[*]}" "$SMOKE_LIMIT" "$BENCH_LIMIT" <<'EOF'
import json, subprocess, sys
from pathlib import Path

out, mode, work, smoke_rc, bench_rc, wall, has_cuda, gpu, smoke_cmd, bench_cmd, smoke_lim, bench_lim = sys.argv[1:]
work = Path(work)

def tail(name, n=40):
    p = work / name
    return p.read_text(errors="replace").splitlines()[-n:] if p.is_file() else []

def git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"

bench = work / "paper_scale.json"
smoke_lines = tail("smoke.log")
res = {
    "mode": mode, "cuda": has_cuda == "1", "gpu": gpu, "git_commit": git("rev-parse", "HEAD"), "wall_s": int(wall),
    "plan": [{"step": "smoke", "command": smoke_cmd, "limit_s": int(smoke_lim)},
             {"step": "paper_scale", "command": bench_cmd, "limit_s": int(bench_lim)}],
    "smoke": None if mode == "dry" else {
        "rc": int(smoke_rc), "timed_out": int(smoke_rc) == 124,
        "passed": int(smoke_rc) == 0 and any(l.startswith("PASS") for l in smoke_lines), "log_tail": smoke_lines},
    "paper_scale": None if mode == "dry" else {
        "rc": int(bench_rc), "timed_out": int(bench_rc) == 124,
        "result": json.loads(bench.read_text()) if bench.is_file() else None, "log_tail": tail("bench.log", 20)},
}
ok = mode == "dry" or (res["smoke"]["passed"] and res["paper_scale"]["rc"] == 0)
res["ok"] = ok
Path(out).write_text(json.dumps(res, indent=1))
print(f"gpu_check: {'OK' if ok else 'FAILED'}; wrote {out}")
sys.exit(0 if ok else 1)
EOF
