#!/usr/bin/env bash
# One call on an air-gapped GPU host: install semiostream offline from the wheelhouse, check it, measure it,
# and leave every report in one flat folder.
#
#   bash bench/gpu_session.sh [--out DIR] [--wheelhouse DIR] [--parts DIR] [--budget-s S] [--rehearse] [--dry-run]
#
# The host (bench/RESULTS.md, "Air-gapped GPU host"): Python 3.12 with torch, numpy, onnx, onnxruntime, CuPy,
# Triton, pyarrow, pillow, h5py, matplotlib, aiohttp, prometheus-client, rich, PyYAML, safetensors and
# scikit-learn, no package index, no DALI, TensorRT, PyAV. What it lacks comes from the wheelhouse that
# bench/gpu_wheelhouse.sh makes (default ./wheelhouse, checked against its SHA256SUMS), installed with
# `pip install --no-index --no-deps --target` into a fresh folder; nothing reaches for the network.
# Steps, each under its own time limit and all within --budget-s (default 540 s: a 15-minute lease with the
# machine's start-up): env, install, doctor (--quick, every check but its benchmarks), pytest-gpu (tests
# marked gpu or trt), engines, scorer, live, archive (python -m semiostream.bench.gpu_visit STEP).
# --parts DIR: wheels too large for one transfer (DALI, TensorRT), carried in parts by earlier calls to the same
# host (bench/gpu_parts.sh): reassembled, sha256-checked and installed the same way (step "parts") before the
# doctor, so the stacks they bring are checked and measured too.
# --rehearse: the same steps on this machine's devices (the CPU) with the smallest sizes, DALI, PyAV and
# TensorRT hidden as on the host (bench/hide_modules); it proves the steps, files and limits, not speed.
# Reports (at most 8 files, directly in the folder): SUMMARY.md, session.log, env.txt, doctor.json,
# doctor.md, pytest-gpu.xml, measure.json. Exit status: 0 all steps passed, 1 a step failed, 2 usage error.
set -u -o pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT_DIR="${OUT:-$PWD/gpu-session}"
WHEELHOUSE="$ROOT/wheelhouse"
BUDGET=540
REHEARSE=0
DRY_RUN=0
PARTS=""
PYTHON="${PYTHON:-python3}"
SITE="${SEMIOSTREAM_SITE:-/tmp/semiostream-site}"
WORK="${SEMIOSTREAM_VISIT_WORK:-/tmp/semiostream-visit}"

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_DIR="${2:?--out needs a folder}"; shift 2 ;;
    --wheelhouse) WHEELHOUSE="${2:?--wheelhouse needs a folder of wheels}"; shift 2 ;;
    --budget-s) BUDGET="${2:?--budget-s needs seconds}"; shift 2 ;;
    --parts) PARTS="${2:?--parts needs a folder of parts}"; shift 2 ;;
    --rehearse) REHEARSE=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_session.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$BUDGET" in
  ''|*[!0-9]*) echo "gpu_session.sh: --budget-s '$BUDGET' must be a whole number of seconds" >&2; exit 2 ;;
esac
if [ ! -d "$WHEELHOUSE" ]; then
  echo "gpu_session.sh: --wheelhouse $WHEELHOUSE is not a folder (make it with bench/gpu_wheelhouse.sh)" >&2; exit 2
fi
if [ ! -f "$WHEELHOUSE/SHA256SUMS" ] || ! ls "$WHEELHOUSE"/*.whl > /dev/null 2>&1; then
  echo "gpu_session.sh: $WHEELHOUSE has no wheels and SHA256SUMS (make it with bench/gpu_wheelhouse.sh)" >&2; exit 2
fi
if [ -n "$PARTS" ] && [ ! -d "$PARTS" ]; then
  echo "gpu_session.sh: --parts $PARTS is not a folder (see bench/gpu_parts.sh)" >&2; exit 2
fi
mkdir -p "$OUT_DIR" || { echo "gpu_session.sh: cannot create $OUT_DIR" >&2; exit 2; }
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
cd "$ROOT" || exit 2

# step limits in seconds (the rehearsal's are for a loaded 2-core CPU)
if [ "$REHEARSE" = 1 ]; then
  MODE=rehearsal; TINY=--tiny
  # a shared 2-core machine under load runs the doctor in ~150-250 s; the limits leave room for twice that
  declare -A LIMIT=([env]=60 [install]=240 [parts]=120 [doctor]=480 [pytest-gpu]=300 [engines]=360 [scorer]=240 [live]=180 [archive]=120)
  export PYTHONPATH="$ROOT/bench/hide_modules:$SITE" SEMIOSTREAM_HIDE_MODULES="nvidia.dali,av,tensorrt"
else
  MODE=gpu; TINY=
  declare -A LIMIT=([env]=15 [install]=60 [parts]=90 [doctor]=120 [pytest-gpu]=90 [engines]=150 [scorer]=60 [live]=100 [archive]=30)
  export PYTHONPATH="$SITE"
fi
export PYTHONUNBUFFERED=1 PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
LOG="$OUT_DIR/session.log"
STEPS="$(mktemp)"
trap 'rm -f "$STEPS"' EXIT
: > "$LOG"
FAILED=()
T0=$SECONDS

# step NAME COMMAND...: run under min(its limit, what is left of the budget), log, add a row to the table
step() {
  local name="$1"; shift
  local limit="${LIMIT[$name]}" left=$((BUDGET - (SECONDS - T0)))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$DRY_RUN" = 1 ]; then
    echo "[dry-run] $name (limit ${limit}s): $*"
    printf '%s\t%s\tdry-run\t0\t\n' "$name" "$limit" >> "$STEPS"
    return 0
  fi
  if [ "$limit" -lt 5 ]; then
    echo "== $name: not run, the ${BUDGET}s budget is spent" | tee -a "$LOG"
    printf '%s\t%s\tbudget\t0\tnot run: budget spent\n' "$name" "${LIMIT[$name]}" >> "$STEPS"
    return 0
  fi
  echo "== $name (limit ${limit}s) $(date -u +%H:%M:%S)" | tee -a "$LOG"
  local t=$SECONDS rc note=""
  timeout --signal=TERM --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" >> "$LOG" 2>&1
  rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then note="stopped at its ${limit}s limit"; fi
  echo "== $name: exit $rc in $((SECONDS - t)) s $note" | tee -a "$LOG"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$limit" "$rc" "$((SECONDS - t))" "$note" >> "$STEPS"
  [ "$rc" = 0 ] || FAILED+=("$name")
  return "$rc"
}

env_report() {
  { echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -n) mode=$MODE commit=$(git rev-parse --short HEAD 2>/dev/null)"
    nvidia-smi 2>&1 || echo "nvidia-smi: no NVIDIA driver here"
    "$PYTHON" - <<'EOF'
import importlib.metadata as md, importlib.util, platform
print("python", platform.python_version(), platform.platform())
for dist in ("torch", "numpy", "onnx", "onnxruntime", "cupy-cuda13x", "cupy-cuda12x", "triton", "pyarrow", "pillow",
             "h5py", "matplotlib", "aiohttp", "prometheus-client", "rich", "PyYAML", "safetensors", "scikit-learn",
             "pip", "setuptools"):
    try:
        print(f"{dist:20} {md.version(dist)}")
    except md.PackageNotFoundError:
        print(f"{dist:20} -")
for mod in ("nvidia.dali", "tensorrt", "av", "zmq", "pydantic", "pydicom", "imagecodecs", "pytest"):
    try:
        found = importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        found = False
    print(f"module {mod:14} {'present' if found else 'absent'}")
EOF
    echo "wheelhouse $WHEELHOUSE:"; ls -l "$WHEELHOUSE"
  } > "$OUT_DIR/env.txt" 2>&1
}

install_offline() {
  rm -rf "$SITE" && mkdir -p "$SITE" || return 1
  (cd "$WHEELHOUSE" && sha256sum --check --quiet SHA256SUMS) || { echo "wheelhouse checksums differ"; return 1; }
  "$PYTHON" -m pip install -q --no-index --no-deps --target "$SITE" "$WHEELHOUSE"/*.whl || return 1
  # semiostream itself, built here without an index (setuptools and wheel come from the wheelhouse)
  "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --target "$SITE" "$ROOT" || return 1
  "$PYTHON" - "$SITE" <<'EOF'
import importlib, os, sys
site = os.path.realpath(sys.argv[1])
bad = []
for mod in ("zmq", "pydantic", "pydantic_core", "pydicom", "imagecodecs", "pytest"):
    m = importlib.import_module(mod)
    where = os.path.realpath(m.__file__)
    print(f"{mod:14} {getattr(m, '__version__', '')} from {where}")
    if not where.startswith(site + os.sep):
        bad.append(mod)
for mod in ("semiostream.engines.scorer", "semiostream.bus.runtime", "semiostream.bench.gpu_visit",
            "semiostream.doctor"):
    print(f"{mod} from {importlib.import_module(mod).__file__}")
from semiostream.engines.stack import choose_stack
print("stack:", choose_stack().describe())
if bad:
    sys.exit(f"not from the wheelhouse: {', '.join(bad)}")
EOF
}

install_parts() {
  local joined="$SITE.parts"
  rm -rf "$joined"
  bash "$ROOT/bench/gpu_parts.sh" join "$PARTS" "$joined" || return 1
  ls "$joined"/*.whl > /dev/null 2>&1 || { echo "no complete wheel in $PARTS"; return 1; }
  "$PYTHON" -m pip install -q --no-index --no-deps --upgrade --target "$SITE" "$joined"/*.whl || return 1
  rm -rf "$joined"
}

doctor_checks() {
  local only
  only=$("$PYTHON" -c 'from semiostream.doctor import CHECKS; print(" ".join("--check " + n for n, _ in CHECKS if n != "benchmarks-gpu"))') || return 1
  # shellcheck disable=SC2086
  "$PYTHON" -c 'import sys; from semiostream.cli import main; sys.exit(main())' doctor --out "$OUT_DIR" --quick $only
}

# shellcheck disable=SC2086
visit() { "$PYTHON" -m semiostream.bench.gpu_visit "$1" --json "$OUT_DIR/measure.json" --work "$WORK" $TINY; }

# the tests of the stacks this host has: torch-CUDA always, DALI's and TensorRT's where they are installed
pytest_gpu() {
  local paths=(tests/engines tests/test_device.py) has
  has() { "$PYTHON" -c "import importlib.util as u, sys; sys.exit(u.find_spec('$1') is None)" 2> /dev/null; }
  # the readers' tests import PyAV at module level (video clips are made with it): not collected where it is absent
  if has av; then paths+=(tests/sources); else echo "PyAV absent: tests/sources not run"; fi
  if has nvidia.dali; then paths+=(tests/dali_pipes); else echo "DALI absent: tests/dali_pipes not run"; fi
  if has tensorrt; then paths+=(tests/trt_build); else echo "TensorRT absent: tests/trt_build not run"; fi
  "$PYTHON" -m pytest -q -m "gpu or trt" --runslow -p no:cacheprovider --junitxml="$OUT_DIR/pytest-gpu.xml" \
    "${paths[@]}"
  local rc=$?
  [ "$rc" = 5 ] && return 0  # nothing selected: no GPU test here is not a failure of the session
  return "$rc"
}

# the steps run in `bash -c` under `timeout`: they see these functions and variables
export -f env_report install_offline install_parts doctor_checks visit pytest_gpu
export ROOT OUT_DIR WHEELHOUSE SITE WORK PYTHON MODE TINY PARTS
if [ "$DRY_RUN" = 0 ]; then rm -f "$OUT_DIR/measure.json"; fi
step env env_report
if step install install_offline; then
  if [ -n "$PARTS" ]; then step parts install_parts; fi
  step doctor doctor_checks
  step pytest-gpu pytest_gpu
  for s in engines scorer live archive; do step "$s" visit "$s"; done
else
  echo "install failed: see session.log; nothing else can run" | tee -a "$LOG"
fi

if [ "$DRY_RUN" = 1 ]; then
  { echo "# semiostream GPU session (dry run)"; echo; echo "| step | limit s | exit | seconds | note |"
    echo "|---|---|---|---|---|"; sed 's/\t/ | /g; s/^/| /; s/$/ |/' "$STEPS"; echo; echo "overall: OK"; } \
    > "$OUT_DIR/SUMMARY.md"
  exit 0
fi
if ! "$PYTHON" -m semiostream.bench.gpu_visit summary --out-dir "$OUT_DIR" --steps "$STEPS" --budget-s "$BUDGET" \
    --mode "$MODE" >> "$LOG" 2>&1; then
  { echo "# semiostream GPU session"; echo; echo "| step | limit s | exit | seconds | note |"; echo "|---|---|---|---|---|"
    sed 's/\t/ | /g; s/^/| /; s/$/ |/' "$STEPS"; echo; echo "overall: FAILED (no summary: see session.log)"; } \
    > "$OUT_DIR/SUMMARY.md"
  FAILED+=(summary)
fi
n=$(find "$OUT_DIR" -mindepth 1 | wc -l)
echo "reports in $OUT_DIR ($n files, $((SECONDS - T0)) s):"; ls -l "$OUT_DIR"
if [ "$n" -gt 8 ]; then echo "more than 8 files in $OUT_DIR"; FAILED+=(files); fi
[ "${#FAILED[@]}" = 0 ] && exit 0
echo "failed: ${FAILED[*]}"
exit 1
