#!/usr/bin/env bash
# The GPU check: run it whenever a GPU is lent (rare and short here), from the repository root of a
# bare GPU machine that can reach no network, with .gpu/ (made by bench/gpu_prepare.sh) beside it.
#   bash bench/gpu_check.sh OUTDIR [stage ...]
# Stages (default: tests speed pair10), each under its own time limit, about 8 minutes in all:
#   tests   the CUDA tests (pytest -m cuda): every method end to end on the GPU, CPU/GPU agreement
#   speed   our DM loop against the reference's at paper sizes (IPC 10, 50), and DM s/iteration
#   pair10  a paper-preset vanilla + reweighted DM pair on full MNIST, IPC 10, evaluation shortened
#           to 2 models x 300 epochs (the preset's 5 x 1,000 takes longer than this check may)
#   paper10, paper50  the same pair with the preset's full evaluation (issue 12's figures; minutes)
#   paper   reweighted DM only, IPC 10 and IPC 50 at once (two processes), the preset's full evaluation:
#           issue 12's GPU targets (above 90.4% and 91.5%) in one stage of about 7 minutes
# Prints one summary (each stage's state, seconds and tables) and leaves every log in OUTDIR.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: bench/gpu_check.sh OUTDIR [stage ...]}"
shift
[ $# -gt 0 ] || set -- tests speed pair10
py="${PYTHON:-python3}"  # the GPU image's python3 holds torch; PYTHON=.venv/bin/python for a dry run here
mkdir -p "$out"
[ -d .gpu/whl ] || { echo "no .gpu/ here: run bench/gpu_prepare.sh first and carry .gpu"; exit 2; }

# The GPU image has torch, numba, scipy, scikit-learn and pandas; the rest comes as wheels, and
# the checkout itself is the package (nothing can be pip-installed from a registry there).
"$py" -m pip install -q --no-index --no-deps --no-compile --target /tmp/ddbias-site .gpu/whl/*.whl
export PYTHONPATH="/tmp/ddbias-site:$PWD" NUMBA_CACHE_DIR=/tmp/numba PYTHONUNBUFFERED=1
data=/tmp/ddbias-data
mkdir -p "$data/MNIST/raw"
for f in .gpu/data/MNIST/raw/*.gz; do gunzip -c "$f" > "$data/MNIST/raw/$(basename "$f" .gz)"; done

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu: /'
  "$py" -c "import torch, platform; print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()}, bf16 {torch.cuda.is_bf16_supported()}, CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} CPU threads')"
  echo "commit: ${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
} | tee "$out/machine.txt"

run_stage() {  # name, seconds allowed, command...
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "== $name (limit ${limit}s): $*"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$? state=ok
  [ $rc -eq 0 ] || state="FAILED (exit $rc$([ $rc -eq 124 ] && echo ', time limit'))"
  echo "| $name | $state | $((SECONDS - start)) |" >> "$out/stages.md"
  tail -n 3 "$out/$name.log"
}

pair=("$py" bench/pair.py --preset paper --source files --root "$data" --device cuda)
: > "$out/stages.md"
for stage in "$@"; do
  case "$stage" in
    tests) run_stage tests 240 "$py" -m pytest -q -m cuda -p no:cacheprovider -rs --ignore=tests/app tests ;;
    speed) run_stage vs_reference 120 "$py" bench/vs_reference.py --reference .gpu/ref --device cuda \
             --ipcs 10,50 --iterations 20 --rounds 3 --source files --root "$data"
           run_stage dm_speed 180 "$py" bench/dm_speed.py --device cuda --iterations 50 --compile ;;
    pair10) run_stage pair10 330 "${pair[@]}" --ipc 10 --tag=-gpu-pair10 --eval-models 2 --eval-epochs 300 ;;
    paper10) run_stage paper10 420 "${pair[@]}" --ipc 10 --tag=-gpu-paper10 ;;
    paper50) run_stage paper50 420 "${pair[@]}" --ipc 50 --tag=-gpu-paper50 ;;
    paper) run_stage paper-ipc10 480 "${pair[@]}" --variants reweighted --ipc 10 --tag=-gpu-rw10 &
           run_stage paper-ipc50 480 "${pair[@]}" --variants reweighted --ipc 50 --tag=-gpu-rw50
           wait ;;
    *) echo "unknown stage '$stage'; choose from tests speed pair10 paper10 paper50 paper"; exit 2 ;;
  esac
done

echo
echo "================ GPU check summary ================"
cat "$out/machine.txt"
echo
echo "| stage | state | seconds |"
echo "|---|---|---|"
cat "$out/stages.md"
for log in "$out"/*.log; do
  echo
  echo "### $(basename "$log" .log)"
  grep -E '^\||^[0-9]{4}-[0-9]{2}-[0-9]{2} \||passed|failed|skipped|[Ee]rror' "$log" | tail -n 40
done
