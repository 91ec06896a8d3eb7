#!/usr/bin/env bash
# One call on a fresh GPU machine: install semiostream with its GPU extras, run `semiostream doctor` and
# the GPU/TensorRT tests with timeouts, and leave every report in one flat folder.
#
#   bash bench/gpu_session.sh [--out DIR] [--quick] [--wheelhouse DIR] [--dry-run]
#
# Reports (at most 8 files, all directly in the folder): SUMMARY.md (each step, exit status, seconds),
# nvidia-smi.txt, install.log, doctor.log, doctor.json, doctor.md, pytest.log, pytest-gpu.xml.
# Exit status: 0 when the doctor and the tests passed, 1 when either failed, 2 for a usage error.
#
# Time: the step limits below add up to 11 minutes (7 with --quick), so a 15-minute GPU lease that includes
# the machine's start-up is used in one call. The venv sees the machine's own Python packages
# (--system-site-packages), so a CUDA torch already installed there is used rather than downloaded;
# packages missing there come from the configured package index or from --wheelhouse (pip --no-index).
set -u -o pipefail

OUT_DIR="${OUT:-$PWD/gpu-session}"
QUICK=0
DRY_RUN=0
WHEELHOUSE=""
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-/tmp/semiostream-gpu-venv}"
INSTALL_TIMEOUT=150
DOCTOR_TIMEOUT=330
PYTEST_TIMEOUT=180

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_DIR="${2:?--out needs a folder}"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --wheelhouse) WHEELHOUSE="${2:?--wheelhouse needs a folder of wheels}"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_session.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$WHEELHOUSE" ] && [ ! -d "$WHEELHOUSE" ]; then
  echo "gpu_session.sh: --wheelhouse $WHEELHOUSE is not a folder" >&2; exit 2
fi
if [ "$QUICK" = 1 ]; then DOCTOR_TIMEOUT=170; PYTEST_TIMEOUT=120; fi

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 2
mkdir -p "$OUT_DIR" || { echo "gpu_session.sh: cannot create $OUT_DIR" >&2; exit 2; }
SUMMARY="$OUT_DIR/SUMMARY.md"
export PYTHONUNBUFFERED=1

export PYTHON VENV WHEELHOUSE
DOCTOR_ARGS=(--out "$OUT_DIR")
if [ "$QUICK" = 1 ]; then DOCTOR_ARGS+=(--quick); fi

{
  echo "# semiostream GPU session"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), quick=$QUICK"
  echo
  echo "| step | limit s | exit | seconds |"
  echo "|---|---|---|---|"
} > "$SUMMARY"

FAILED=0
# step NAME LIMIT LOG COMMAND...: run with a time limit, log to LOG, add a row to the summary
step() {
  local name="$1" limit="$2" log="$3"; shift 3
  if [ "$DRY_RUN" = 1 ]; then
    echo "[dry-run] $name (limit ${limit}s, log $log): $*"
    echo "| $name | $limit | dry-run | 0 |" >> "$SUMMARY"
    return 0
  fi
  echo "== $name (limit ${limit}s)"
  local t0=$SECONDS rc
  timeout --signal=TERM --kill-after=15 "$limit" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] && echo "$name: stopped at its ${limit}s limit" | tee -a "$log"
  echo "| $name | $limit | $rc | $((SECONDS - t0)) |" >> "$SUMMARY"
  return "$rc"
}

# 1. the machine
if [ "$DRY_RUN" = 1 ]; then
  echo "[dry-run] nvidia-smi > $OUT_DIR/nvidia-smi.txt"
else
  { nvidia-smi || echo "nvidia-smi failed: no NVIDIA driver here"; } > "$OUT_DIR/nvidia-smi.txt" 2>&1
fi

# 2. install: a venv over the machine's packages, then semiostream with its GPU extras
install_semiostream() {
  "$PYTHON" -m venv --system-site-packages "$VENV" || return 1
  local pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
  if [ -n "$WHEELHOUSE" ]; then pip+=(--no-index --find-links "$WHEELHOUSE"); fi
  if "${pip[@]}" -e ".[trt,dev]"; then return 0; fi
  echo "installing the GPU extras failed; installing semiostream alone over the machine's packages" \
       "(the doctor reports what is missing)"
  "${pip[@]}" --no-deps --no-build-isolation -e . || return 1
  return 3  # installed, but without every extra
}
export -f install_semiostream
step install "$INSTALL_TIMEOUT" "$OUT_DIR/install.log" bash -c install_semiostream
INSTALL_RC=$?
if [ "$DRY_RUN" = 0 ] && [ "$INSTALL_RC" != 0 ] && [ "$INSTALL_RC" != 3 ]; then
  echo "install failed (exit $INSTALL_RC); see install.log" | tee -a "$SUMMARY"
  exit 1
fi
BIN="$VENV/bin"

# 3. the doctor: environment, CPU and GPU checks, benchmarks -> doctor.json / doctor.md
step doctor "$DOCTOR_TIMEOUT" "$OUT_DIR/doctor.log" "$BIN/semiostream" doctor "${DOCTOR_ARGS[@]}" || FAILED=1

# 4. the tests that need a GPU or TensorRT (slow ones included)
step pytest-gpu "$PYTEST_TIMEOUT" "$OUT_DIR/pytest.log" "$BIN/python" -m pytest -q -m "gpu or trt" --runslow \
  -p no:cacheprovider --junitxml="$OUT_DIR/pytest-gpu.xml" tests
PYTEST_RC=$?
# pytest exit 5 = nothing selected: a skipped GPU run (no GPU) is not a failure of this script
if [ "$PYTEST_RC" != 0 ] && [ "$PYTEST_RC" != 5 ]; then FAILED=1; fi

{
  echo
  if [ -f "$OUT_DIR/doctor.md" ]; then sed -n '3p' "$OUT_DIR/doctor.md"; fi
  tail -n 1 "$OUT_DIR/pytest.log" 2>/dev/null
  echo
  echo "overall: $([ "$FAILED" = 0 ] && echo OK || echo FAILED)"
} >> "$SUMMARY"
echo "reports in $OUT_DIR:"; ls "$OUT_DIR"
exit "$FAILED"
