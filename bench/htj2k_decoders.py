"""HTJ2K decoders side by side on the same 512x424 uint16 frames: OpenJPH (imagecodecs, what the readers use),
OpenJPEG (pylibjpeg-openjpeg, the independent decoder of the tests) and the header check every frame gets
first (:mod:`semiostream.sources.j2k_header`), one core, ms per frame.

Why it is measured: OpenJPH hangs on some damaged headers where OpenJPEG raises; the readers keep OpenJPH and
check each header first instead of switching decoders. This shows what each choice costs per frame.

Usage: ``python -m semiostream.bench.htj2k_decoders [--frames 60] [--repeats 5]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from . import common
from .archive import _kinect_like, _timed

NAME = "htj2k_decoders"


def frames_512x424(n: int) -> tuple[np.ndarray, str]:
    """``[n, 424, 512]`` uint16: the real Kinect IR frame with shot noise, cropped (else synthetic noise)."""
    kin = _kinect_like(n)
    if kin is not None:
        return np.ascontiguousarray(kin[:, :424, :512]), "real Kinect IR frame + shot noise, cropped to 512x424"
    rng = np.random.default_rng(0)
    return rng.normal(2000, 300, (n, 424, 512)).clip(0, 65535).astype(np.uint16), "synthetic 512x424 noise"


def run(n: int = 60, repeats: int = 5) -> dict:
    import imagecodecs
    import openjpeg

    from semiostream.sources import htj2k_codec
    from semiostream.sources.j2k_header import check

    frames, what = frames_512x424(n)
    streams = [htj2k_codec.encode(f) for f in frames]
    for f, s in zip(frames, streams, strict=True):  # both decoders give the frames back before timing them
        if not (np.array_equal(imagecodecs.htj2k_decode(s), f) and np.array_equal(openjpeg.decode(s), f)):
            raise RuntimeError("a decoder does not give the encoded frame back")
    ms = {
        "openjph_ms": _timed(lambda: [imagecodecs.htj2k_decode(s) for s in streams], repeats),
        "openjpeg_ms": _timed(lambda: [openjpeg.decode(s) for s in streams], repeats),
        "openjph_checked_ms": _timed(lambda: [htj2k_codec.decode(s, (424, 512)) for s in streams], repeats),
        "header_check_ms": _timed(lambda: [check(s, (424, 512)) for s in streams], repeats),
    }
    res = {k: 1e3 * v / n for k, v in ms.items()}
    res.update(frames=n, repeats=repeats, what=what, bytes_per_frame=float(np.mean([len(s) for s in streams])),
               openjpeg_vs_openjph=res["openjpeg_ms"] / res["openjph_ms"])
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semiostream.bench.htj2k_decoders",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60, help="frames decoded per timed run (default 60)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported (default 5)")
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT, help="folder for JSON")
    args = ap.parse_args(argv)
    facts = common.machine_facts()
    res = run(args.frames, args.repeats)
    res.update(benchmark=NAME, machine=facts,
               command="python -m semiostream.bench.htj2k_decoders " + " ".join(argv or []))
    res["markdown"] = common.print_table(
        f"HTJ2K decode, one core, ms per frame ({res['what']}, {res['bytes_per_frame']:.0f} bytes)",
        ["OpenJPH (imagecodecs)", "OpenJPEG (pylibjpeg-openjpeg)", "OpenJPH + header check", "header check",
         "OpenJPEG / OpenJPH"],
        [(res["openjph_ms"], res["openjpeg_ms"], res["openjph_checked_ms"], res["header_check_ms"],
          f"{res['openjpeg_vs_openjph']:.1f}x")])
    print(f"wrote {common.write_result(NAME, res, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
