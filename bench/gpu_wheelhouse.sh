#!/usr/bin/env bash
# Download the wheels that an air-gapped GPU host lacks, for bench/gpu_session.sh to install offline.
#
#   bash bench/gpu_wheelhouse.sh [--dest DIR] [--python-version 3.12] [--max-mib 40]
#
# The reference host (bench/RESULTS.md, "Air-gapped GPU host") has Python 3.12, torch 2.11, numpy, onnx,
# onnxruntime, CuPy, Triton, pyarrow, pillow, h5py, matplotlib, aiohttp, prometheus-client, rich, PyYAML,
# safetensors and scikit-learn, and no package index. What semiostream's scorer, bus, benches and tests
# import beyond that comes from here: pyzmq (bus), pydantic + pydantic-core + annotated-types +
# typing-inspection + typing-extensions (config), pydicom (DICOM inputs), imagecodecs (HTJ2K / JPEG-LS
# DICOM decoding for the archive step), pytest + pluggy + iniconfig (the GPU tests), setuptools + wheel
# (to build semiostream itself there without an index). Not here, by size: PyAV (~35 MiB: video inputs
# are measured where it is installed), DALI (~0.5 GB) and TensorRT (> 1 GB).
#
# Wheels are for CPython DEST's --python-version on manylinux x86-64 (--python-version 3.11 builds one this
# machine can install, for the CPU rehearsal). The folder is emptied first; the total must stay within
# --max-mib (default 40, so that the project's tree fits beside it in one 64 MiB transfer).
# Exit status: 0 done, 1 a download failed or the folder is too large, 2 usage error.
set -u -o pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/wheelhouse"
PYVER="3.12"
MAX_MIB=40
# exact versions: the ones the project's tests run with (pydantic-core must be the one pydantic pins)
WHEELS=(
  pyzmq==27.3.0
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0
  pydicom==3.0.2
  imagecodecs==2026.3.6
  pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1
  setuptools==84.2.1 wheel==0.48.0
)

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dest) DEST="${2:?--dest needs a folder}"; shift 2 ;;
    --python-version) PYVER="${2:?--python-version needs X.Y}"; shift 2 ;;
    --max-mib) MAX_MIB="${2:?--max-mib needs a number}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_wheelhouse.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$PYVER" in
  3.[0-9]|3.[0-9][0-9]) ;;
  *) echo "gpu_wheelhouse.sh: --python-version '$PYVER' must look like 3.12" >&2; exit 2 ;;
esac
case "$MAX_MIB" in
  ''|*[!0-9]*) echo "gpu_wheelhouse.sh: --max-mib '$MAX_MIB' must be a whole number" >&2; exit 2 ;;
esac
PYTHON="${PYTHON:-python3}"
ABI="cp${PYVER/./}"

rm -rf "$DEST" && mkdir -p "$DEST" || { echo "gpu_wheelhouse.sh: cannot create $DEST" >&2; exit 2; }
echo "downloading ${#WHEELS[@]} wheels for CPython $PYVER manylinux x86-64 into $DEST"
if ! timeout 600 "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$PYVER" --implementation cp --abi "$ABI" --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d "$DEST" "${WHEELS[@]}"; then
  echo "gpu_wheelhouse.sh: a download failed (is the package index reachable?)" >&2
  exit 1
fi

n=$(find "$DEST" -maxdepth 1 -name '*.whl' | wc -l)
if [ "$n" != "${#WHEELS[@]}" ]; then
  echo "gpu_wheelhouse.sh: expected ${#WHEELS[@]} wheels, got $n" >&2; exit 1
fi
total=$(du -cb "$DEST"/*.whl | tail -n 1 | cut -f1)
(cd "$DEST" && sha256sum ./*.whl > SHA256SUMS)
echo "contents:"
(cd "$DEST" && for f in *.whl; do printf '  %8.2f MiB  %s\n' "$(echo "$(stat -c %s "$f") / 1048576" | bc -l)" "$f"; done)
mib=$(echo "$total / 1048576" | bc -l)
printf 'total: %.2f MiB in %d wheels (limit %d MiB); checksums in %s\n' "$mib" "$n" "$MAX_MIB" "$DEST/SHA256SUMS"
if [ "$total" -gt $((MAX_MIB * 1048576)) ]; then
  echo "gpu_wheelhouse.sh: the wheelhouse is larger than $MAX_MIB MiB" >&2; exit 1
fi
