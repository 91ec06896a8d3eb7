"""Stress figures for HTJ2K archives, measured once and reported (not part of the suite; the suite runs lean
versions of both, see test_dp_htj2k_integrity.py).

* ``convert N``: ``semiostream convert IN.npy OUT.dcm`` on N different multi-frame inputs, each in a fresh
  process (the encoder's first use on several threads is what used to fail); every archive written is then
  decoded by pydicom's own HTJ2K plugin (OpenJPEG, independent of the OpenJPH encoder) and compared bit for
  bit with its input. Prints failures (non-zero exit) and undecodable / different archives.
* ``threads N [raw]``: N fresh processes whose very first HTJ2K encodes run on 8 threads at once (16 frames
  of 120x160), each codestream decoded by OpenJPEG and compared; ``raw`` calls imagecodecs directly instead
  of :func:`semiostream.sources.htj2k_codec.encode` (the unguarded first use). Prints bad processes.
* ``flip N``: one archive, N trials; each flips 1-16 random bytes inside one random frame's codestream of a
  copy and reads the whole copy with :class:`DicomSource`. Prints how many trials raised a ``SourceError``
  naming that frame.
* ``header N [raw]``: N trials on single 64x48 codestreams as another writer's archive holds them (no
  checksum); each flips 1-4 of the first 200 bytes (the main header and the first tile-part header) and
  decodes with :func:`semiostream.sources.htj2k_codec.decode` (header check first), or with ``raw``
  imagecodecs' ``htj2k_decode`` straight. A trial that gives no answer in 5 s is a hang; prints the counts
  of errors, decodes and hangs.

Usage: ``python tests/sources/stress_htj2k.py convert 200 [--no-verify]`` /
``python tests/sources/stress_htj2k.py threads 200 [raw]`` / ``python tests/sources/stress_htj2k.py flip 200``
/ ``python tests/sources/stress_htj2k.py header 2000 [raw]``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the helpers the suite shares
from independent_decode import pydicom_frames  # noqa: E402


def convert_trials(n: int, extra: list[str], folder: Path, seed: int = 0) -> dict[str, int]:
    """Convert ``n`` random multi-frame clips in fresh processes; count failures and bad archives."""
    rng = np.random.default_rng(seed)
    counts = {"runs": 0, "failed": 0, "undecodable": 0, "different": 0}
    for i in range(n):
        t, h, w = int(rng.integers(4, 13)), int(rng.integers(16, 97)), int(rng.integers(16, 129))
        frames = rng.integers(0, 1 << int(rng.choice([8, 12, 16])), (t, h, w), dtype=np.uint16)
        src, dst = folder / f"in{i}.npy", folder / f"out{i}.dcm"
        np.save(src, frames)
        r = subprocess.run([sys.executable, "-m", "semiostream.cli", "convert", str(src), str(dst), *extra],
                           capture_output=True, text=True, timeout=300)
        counts["runs"] += 1
        if r.returncode != 0:
            counts["failed"] += 1
            print(f"run {i}: exit {r.returncode}: {r.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        try:
            got = pydicom_frames(dst)
        except Exception as e:  # noqa: BLE001 - counted and reported
            counts["undecodable"] += 1
            print(f"run {i}: undecodable ({type(e).__name__}: {e})", flush=True)
            continue
        if not np.array_equal(got, frames):
            counts["different"] += 1
            print(f"run {i}: decodes to different pixels", flush=True)
        src.unlink()
        dst.unlink()
    return counts


THREADS_PROBE = """
import concurrent.futures as cf, sys
import numpy as np
if sys.argv[4] == "raw":
    import imagecodecs
    def encode(f):
        return bytes(imagecodecs.htj2k_encode(f, reversible=True))
else:
    from semiostream.sources.htj2k_codec import encode
rng = np.random.default_rng(int(sys.argv[1]))
frames = rng.integers(0, 65536, (16, 120, 160), dtype=np.uint16)
with cf.ThreadPoolExecutor(8) as pool:  # the very first encodes of this process, on 8 threads at once
    data = list(pool.map(encode, frames))
np.save(sys.argv[2], frames)
open(sys.argv[3], "wb").write(b"".join(len(d).to_bytes(4, "little") + d for d in data))
"""


def thread_trials(n: int, folder: Path, raw: bool = False, seed: int = 0) -> dict[str, int]:
    """``n`` fresh processes encoding their first frames on 8 threads; count processes with a bad frame."""
    import openjpeg

    counts = {"processes": 0, "bad": 0}
    for k in range(n):
        npy, cs = folder / "f.npy", folder / "c.bin"
        r = subprocess.run([sys.executable, "-c", THREADS_PROBE, str(seed + k), str(npy), str(cs),
                            "raw" if raw else "guarded"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        frames, buf, pos, bad = np.load(npy), cs.read_bytes(), 0, 0
        for i in range(len(frames)):
            size = int.from_bytes(buf[pos : pos + 4], "little")
            try:
                bad += not np.array_equal(openjpeg.decode(buf[pos + 4 : pos + 4 + size]), frames[i])
            except Exception:  # noqa: BLE001 - undecodable: counted
                bad += 1
            pos += 4 + size
        counts["processes"] += 1
        counts["bad"] += bad > 0
        if bad:
            print(f"process {k}: {bad} of {len(frames)} frames wrong", flush=True)
    return counts


def flip_trials(n: int, folder: Path, seed: int = 1) -> dict[str, int]:
    """Flip bytes inside one random frame of an archive copy ``n`` times; count errors naming that frame."""
    from semiostream.sources.read_dicom import DicomSource
    from semiostream.sources.source import SourceError
    from semiostream.sources.write_dicom import write_htj2k_dicom

    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 4096, (30, 48, 64), dtype=np.uint16)
    good = write_htj2k_dicom(folder / "good.dcm", frames, 30.0)
    with DicomSource(good) as src:
        starts, stops = src._starts.copy(), src._stops.copy()
    data = good.read_bytes()
    counts = {"trials": 0, "named": 0, "other_error": 0, "silent": 0}
    for _ in range(n):
        i = int(rng.integers(len(frames)))
        bad = bytearray(data)
        a, b = int(starts[i]) + 8, int(stops[i])  # the frame's codestream (after its item header)
        for p in rng.choice(np.arange(a, b), int(rng.integers(1, 17)), replace=False):
            bad[p] ^= int(rng.integers(1, 256))
        path = folder / "bad.dcm"
        path.write_bytes(bytes(bad))
        counts["trials"] += 1
        try:
            with DicomSource(path) as src:
                src.read(0, src.num_frames)
            counts["silent"] += 1
        except SourceError as e:
            counts["named" if f"frame {i}" in str(e) else "other_error"] += 1
    return counts


HEADER_PROBE = """
import sys
import imagecodecs
import numpy as np
from semiostream.sources import htj2k_codec
frame = np.random.default_rng(0).integers(0, 4096, (48, 64)).astype(np.uint16)
good = htj2k_codec.encode(frame)
for seed in range(int(sys.argv[1]), int(sys.argv[2])):
    rng = np.random.default_rng(seed)
    bad = bytearray(good)
    for p in rng.choice(200, int(rng.integers(1, 5)), replace=False):
        bad[p] ^= int(rng.integers(1, 256))
    print("trial", seed, flush=True)
    try:
        if sys.argv[3] == "raw":
            imagecodecs.htj2k_decode(bytes(bad))
        else:
            htj2k_codec.decode(bytes(bad), (48, 64))
        print("decoded", flush=True)
    except Exception:  # noqa: BLE001 - counted
        print("error", flush=True)
"""


def header_trials(n: int, raw: bool = False, stall_s: float = 5.0) -> dict[str, int]:
    """``n`` damaged-header trials in a child process restarted after each hang (see the module docstring)."""
    import select

    counts = {"trials": 0, "error": 0, "decoded": 0, "hang": 0, "crash": 0}
    seed = 0
    while seed < n:
        p = subprocess.Popen([sys.executable, "-c", HEADER_PROBE, str(seed), str(n), "raw" if raw else "checked"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        pending = False  # a trial has started and not answered yet (the process's start-up is not timed)
        try:
            while True:
                if not select.select([p.stdout], [], [], stall_s if pending else 300.0)[0]:
                    counts["hang"] += 1
                    counts["trials"] += 1
                    print(f"trial {seed}: no answer in {stall_s:g} s", flush=True)
                    seed += 1
                    break
                line = p.stdout.readline().split()
                if not line:  # the child ended: every trial answered, or it crashed in trial `seed`
                    if seed < n:
                        counts["crash"] += 1
                        print(f"trial {seed}: the process died ({p.wait()})", flush=True)
                        counts["trials"] += 1
                        seed += 1
                    break
                pending = line[0] == "trial"
                if pending:
                    seed = int(line[1])
                else:
                    counts[line[0]] += 1
                    counts["trials"] += 1
                    seed += 1
        finally:
            p.kill()
            p.wait()
    return counts


if __name__ == "__main__":
    what, n = sys.argv[1], int(sys.argv[2])
    with tempfile.TemporaryDirectory() as d:
        if what == "convert":
            print(convert_trials(n, sys.argv[3:], Path(d)))
        elif what == "threads":
            print(thread_trials(n, Path(d), raw=sys.argv[3:] == ["raw"]))
        elif what == "header":
            print(header_trials(n, raw=sys.argv[3:] == ["raw"]))
        else:
            print(flip_trials(n, Path(d)))
