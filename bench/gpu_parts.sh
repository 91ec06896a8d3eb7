#!/usr/bin/env bash
# Carry a wheel larger than one transfer (DALI ~0.5 GB, TensorRT > 1 GB) to a host in parts, and put it together.
#
#   bash bench/gpu_parts.sh split WHEEL DIR [--part-mib 60]   # DIR gets NAME.partNNN and NAME.parts
#   bash bench/gpu_parts.sh join DIR OUTDIR                     # every complete set -> OUTDIR/NAME, sha256-checked
#   bash bench/gpu_parts.sh estimate DIR [--s-per-part S]       # transfers and seconds a set costs
#
# Each part travels with one transfer (at most 64 MiB with the tree, so parts are 60 MiB) to the same running
# host, where the parts gather in one folder (bench/gpu_session.sh --parts DIR). NAME.parts lists the wheel's
# size and sha256 and each part's sha256; `join` refuses a set with a missing or altered part and says which.
# A part costs one call on the host: its transfer plus the call's own start (--s-per-part, default 30 s), so a
# DALI wheel (~9 parts) costs about 4.5 minutes of a 15-minute visit and TensorRT (~18+ parts) more than the
# visit: `estimate` says whether a set fits the time left. Exit status: 0 done, 1 a set is incomplete or
# altered, 2 usage error.
set -u -o pipefail

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "gpu_parts.sh: $*" >&2; exit 2; }

cmd="${1:-}"; shift || true
case "$cmd" in
  split)
    [ $# -ge 2 ] || die "split needs WHEEL DIR (see --help)"
    wheel="$1"; dir="$2"; shift 2; mib=60
    [ "${1:-}" = "--part-mib" ] && { mib="${2:?--part-mib needs a number}"; shift 2; }
    case "$mib" in ''|*[!0-9]*|0) die "--part-mib '$mib' must be a whole number above 0" ;; esac
    [ -f "$wheel" ] || die "$wheel is not a file"
    mkdir -p "$dir" || die "cannot create $dir"
    name="$(basename "$wheel")"
    rm -f "$dir/$name".part* "$dir/$name.parts"
    split -b "${mib}M" -d -a 3 "$wheel" "$dir/$name.part" || exit 1
    { echo "name $name"; echo "size $(stat -c %s "$wheel")"; echo "sha256 $(sha256sum "$wheel" | cut -d' ' -f1)"
      (cd "$dir" && for p in "$name".part[0-9][0-9][0-9]; do echo "part $(sha256sum "$p")"; done)
    } > "$dir/$name.parts"
    n=$(grep -c '^part ' "$dir/$name.parts")
    echo "$name: $n parts of at most $mib MiB in $dir (manifest $name.parts)"
    ;;
  join)
    [ $# -ge 2 ] || die "join needs DIR OUTDIR (see --help)"
    dir="$1"; out="$2"
    [ -d "$dir" ] || die "$dir is not a folder"
    mkdir -p "$out" || die "cannot create $out"
    bad=0; found=0
    for manifest in "$dir"/*.parts; do
      [ -f "$manifest" ] || continue
      found=1
      name="$(sed -n 's/^name //p' "$manifest")"; want="$(sed -n 's/^sha256 //p' "$manifest")"
      missing="$(cd "$dir" && sed -n 's/^part //p' "$manifest" | sha256sum --check --quiet 2>&1 | grep ': FAILED' | sed 's/: FAILED.*//' | sort -u)"
      if [ -n "$missing" ]; then
        echo "$name: incomplete or altered parts: $(echo "$missing" | tr '\n' ' ')"; bad=1; continue
      fi
      (cd "$dir" && sed -n 's/^part [0-9a-f]*  //p' "$manifest" | xargs cat) > "$out/$name.tmp"
      if [ "$(sha256sum "$out/$name.tmp" | cut -d' ' -f1)" != "$want" ]; then
        echo "$name: reassembled file does not match its sha256"; rm -f "$out/$name.tmp"; bad=1; continue
      fi
      mv "$out/$name.tmp" "$out/$name"
      echo "$name: reassembled from $(grep -c '^part ' "$manifest") parts, sha256 ok"
    done
    [ "$found" = 1 ] || echo "no part sets (*.parts) in $dir"
    exit "$bad"
    ;;
  estimate)
    [ $# -ge 1 ] || die "estimate needs DIR (see --help)"
    dir="$1"; shift; sp=30
    [ "${1:-}" = "--s-per-part" ] && { sp="${2:?--s-per-part needs seconds}"; shift 2; }
    for manifest in "$dir"/*.parts; do
      [ -f "$manifest" ] || continue
      n=$(grep -c '^part ' "$manifest")
      echo "$(sed -n 's/^name //p' "$manifest"): $n transfers, about $((n * sp)) s of machine time"
    done
    ;;
  -h|--help) usage ;;
  *) die "unknown command '$cmd': split, join or estimate (see --help)" ;;
esac
