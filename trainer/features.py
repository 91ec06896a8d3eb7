"""Feature extraction with an on-disk cache: seizure video -> windows -> I3D features ``[n, 7, 1024]``.

For every manifest row: open the video (:func:`semiostream.sources.readers.open_source`), take the
clinical segment ``[onset, offset)``, cut it into the bundle spec's windows (non-overlapping ``window``
frames, a leftover of at least ``min_frames`` kept; :func:`~semiostream.sources.windows.plan_windows`) of
the video read at the spec's rate ``fps`` (resampled on its timestamps when its own rate differs, as
``semiostream score`` does: :func:`~semiostream.sources.rate.at_rate`),
choose the crop (the row's ROI, else the ROI detector on the segment's first frame by its crop rule,
else the full frame; which one applied is recorded per seizure), fix the segment's intensity window when
the spec holds one per video (``intensity_scope="video"``: computed once from the segment's first frames,
:func:`~semiostream.dali_pipes.event_intensity.segment_window`), and ask a *featurizer* (the engines'
:class:`~semiostream.engines.scorer.Scorer`, with the held window) for the features of each window,
pre-padded with -1.

The cache holds one ``.npz`` per seizure under ``<cache>/<key[:2]>/<key>.npz``. The key is the sha256 of

* the video's content (sha256 of the file's bytes, or of every file of a frame folder),
* the stream, the segment, the fps override, the row's ROI and the ROI detector,
* the preprocessing spec (:class:`~semiostream.core.preprocess_spec.PreprocessSpec`),
* the I3D weights (a digest of the state dict's tensors, independent of the file format they came in).

So renaming or moving a video keeps its features; changing a pixel, the spec or the weights does not.
Each entry is written atomically (:func:`semiostream.core.files.atomic_write`), so a killed run
leaves only whole entries, and the next run resumes with the seizures still missing. Content hashes are
remembered in ``<cache>/hashes.json`` by (path, size, mtime) so unchanged videos are not re-read.

Decoding runs in a thread pool (``workers``) ahead of the featurizer; a video that fails (unreadable,
segment too short, ...) is reported in :class:`ExtractionReport` and skipped, the rest goes on.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from semiostream.core.files import atomic_write, sha256_of
from semiostream.core.segment import Segment

from .dataset import FeatureSet
from .manifest import Manifest
from .ui import progress

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: windows made at the spec's rate (videos at other rates resampled)
NUM_STEPS, FEATURE_DIM = 7, 1024


class Featurizer(Protocol):
    """``features(windows, rois[, intensities=(lo, hi)]) -> [N, 7, 1024]`` float32, pre-padded with rows of -1.

    ``windows``: list of ``[T, H, W]`` uint16 frame arrays; ``rois``: one ``(x0, y0, x1, y1)`` or None
    (full frame) per window; ``intensities``: the held raw intensity window of the seizure (passed only
    when the spec holds one per video).
    """

    def features(self, windows: Sequence[np.ndarray], rois: Sequence[Any], **kw: Any) -> np.ndarray: ...


class ExtractError(RuntimeError):
    """One seizure's features could not be computed (the message says why)."""


# ------------------------------------------------------------------------------------------- hashing


def sha256_of_path(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names and contents, sorted)."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        if not files:
            raise ExtractError(f"{p} is an empty folder")
        for f in files:
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
            h.update(sha256_of_path(f).encode())
        return h.hexdigest()
    return sha256_of(p, chunk)


def state_digest(module: Any) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes and bytes, in name order)."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def spec_digest(spec: Any) -> str:
    return hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()


def _stat_key(p: Path) -> str:
    if p.is_dir():
        parts = sorted((f.relative_to(p).as_posix(), f.stat().st_size, f.stat().st_mtime_ns)
                       for f in p.rglob("*") if f.is_file())
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()
    st = p.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


# --------------------------------------------------------------------------------------------- cache


@dataclass
class CachedFeatures:
    """One cache entry: ``features`` ``[n, 7, 1024]`` float32, window frame ranges, crop and metadata."""

    features: np.ndarray
    starts: np.ndarray
    stops: np.ndarray
    roi: tuple[int, int, int, int] | None
    meta: dict[str, Any]


class ContentHashMemo:
    """sha256 of video contents (files or frame folders), remembered in a JSON file by (absolute path,
    size, mtime): an unchanged file is hashed once, a touched or rewritten one again. Thread-safe; call
    :meth:`save` to persist (atomically) what was learned. Used by the feature cache and archive scoring.
    """

    def __init__(self, json_path: str | os.PathLike) -> None:
        self.path = Path(json_path)
        self._lock = threading.Lock()
        try:
            self._hashes: dict[str, dict[str, str]] = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            self._hashes = {}

    def sha256(self, path: str | os.PathLike) -> str:
        """Content sha256 of ``path``. Raises OSError if it is unreadable."""
        p = Path(path).resolve()
        sk = _stat_key(p)
        with self._lock:
            hit = self._hashes.get(str(p))
        if hit and hit.get("stat") == sk:
            return hit["sha256"]
        digest = sha256_of_path(p)
        with self._lock:
            self._hashes[str(p)] = {"stat": sk, "sha256": digest}
        return digest

    def save(self) -> None:
        with self._lock:
            data = json.dumps(self._hashes, indent=0, sort_keys=True)
        atomic_write(self.path, data)


class FeatureCache:
    """Directory of per-seizure feature files (see the module docstring for the key)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hashes = ContentHashMemo(self.root / "hashes.json")
        self._clean_stale_temp()

    def _clean_stale_temp(self, older_than_s: float = 3600) -> None:
        now = time.time()
        for tmp in self.root.glob("*/.*.tmp"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > older_than_s:
                    tmp.unlink()

    def content_hash(self, path: str | os.PathLike) -> str:
        """sha256 of a video's content, remembered by (absolute path, size, mtime)."""
        return self.hashes.sha256(path)

    def save_hashes(self) -> None:
        self.hashes.save()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> CachedFeatures | None:
        """The entry, or None if absent or unreadable (an unreadable entry is deleted)."""
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                roi = z["roi"]
                return CachedFeatures(
                    z["features"].astype(np.float32), z["starts"], z["stops"],
                    tuple(int(v) for v in roi) if roi.size == 4 else None, json.loads(str(z["meta"])),
                )
        except Exception as e:  # truncated / foreign file: recompute
            log.warning("cache entry %s is unreadable (%s); it will be recomputed", p, e)
            p.unlink(missing_ok=True)
            return None

    def put(self, key: str, entry: CachedFeatures) -> Path:
        f = np.asarray(entry.features, np.float32)
        if f.ndim != 3 or f.shape[1:] != (NUM_STEPS, FEATURE_DIM):
            raise ValueError(f"features must be [n, {NUM_STEPS}, {FEATURE_DIM}]; got {f.shape}")
        p = self.path(key)
        arrays = {"features": f, "starts": np.asarray(entry.starts, np.int64),
                  "stops": np.asarray(entry.stops, np.int64),
                  "roi": np.asarray(entry.roi if entry.roi else [], np.int64),
                  "meta": np.array(json.dumps(entry.meta))}
        atomic_write(p, lambda out: np.savez(out, **arrays))
        return p


# ----------------------------------------------------------------------------------------- extraction


@dataclass(frozen=True)
class ExtractionSettings:
    """What besides the video determines the features (all part of the cache key)."""

    spec: Any  # PreprocessSpec
    i3d_digest: str
    detector: str = "full"  # id of the ROI detector, e.g. "full", "yolox:<sha256 of weights>"
    backend: str = "reference"  # engine backend: bf16/fp16 features differ from fp32 ones

    def key_for(self, row: Segment, content_sha256: str) -> str:
        blob = {
            "v": CACHE_VERSION, "content": content_sha256, "stream": row.stream, "onset": row.onset,
            "offset": row.offset, "fps": row.fps, "roi": list(row.roi) if row.roi else None,
            "detector": None if row.roi else self.detector, "spec": self.spec.to_dict(),
            "i3d": self.i3d_digest, "backend": self.backend,
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:40]


@dataclass
class ExtractionReport:
    """Per-row outcome of :func:`extract_features`."""

    keys: dict[str, str] = field(default_factory=dict)  # seizure key -> cache key
    cached: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    windows: dict[str, int] = field(default_factory=dict)
    crops: dict[str, dict[str, Any]] = field(default_factory=dict)  # seizure key -> {"rule", "roi", ...}
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def ok(self) -> list[str]:
        return [k for k in self.keys if k in self.windows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seizures": len(self.keys), "cached": len(self.cached), "computed": len(self.computed),
            "failed": self.failed, "windows": int(sum(self.windows.values())), "notes": self.notes,
            "seconds": round(self.seconds, 2), "cache_keys": self.keys, "crops": self.crops,
            "crop_rules": self.crop_counts(),
        }

    def crop_counts(self) -> dict[str, int]:
        """How many seizures each crop rule applied to (``person+bed``, ``full frame``, ``manifest`` ...)."""
        counts: dict[str, int] = {}
        for c in self.crops.values():
            counts[c["rule"]] = counts.get(c["rule"], 0) + 1
        return dict(sorted(counts.items()))

    def summary(self) -> str:
        s = (f"{len(self.ok())}/{len(self.keys)} seizures have features ({len(self.cached)} from the cache, "
             f"{len(self.computed)} computed, {sum(self.windows.values())} windows) in {self.seconds:.1f} s")
        if self.crops:
            s += "; crops: " + ", ".join(f"{rule} {n}" for rule, n in self.crop_counts().items())
        if self.failed:
            s += f"; {len(self.failed)} failed:\n" + "\n".join(f"  - {f['key']}: {f['error']}" for f in self.failed)
        return s


@dataclass
class _Plan:
    row: Segment
    key: str
    ranges: list[tuple[int, int]]
    roi: tuple[int, int, int, int] | None
    fps: float
    note: str = ""
    crop_rule: str = "full frame"
    intensity: tuple[float, float] | None = None
    features: list[np.ndarray] = field(default_factory=list)
    pending: int = 0
    failed: bool = False


def segment_frames(row: Segment, num_frames: int, fps: float) -> tuple[int, int]:
    """Frame range ``[start, stop)`` of the row's ``[onset, offset)`` seconds, clamped to the video."""
    start = 0 if row.onset is None else int(round(row.onset * fps))
    stop = num_frames if row.offset is None else int(round(row.offset * fps))
    return min(max(start, 0), num_frames), min(max(stop, 0), num_frames)


def _open(row: Segment, fps: float):
    """The row's video read at ``fps`` frames/s (the spec's rate; resampled when its own differs)."""
    from semiostream.sources.rate import at_rate
    from semiostream.sources.readers import open_source

    return at_rate(open_source(row.path, stream=row.stream, fps=row.fps), fps)


def _plan_row(row: Segment, key: str, settings: ExtractionSettings, detector: Any | None) -> _Plan:
    from semiostream.core.roi import as_roi
    from semiostream.dali_pipes.event_intensity import holds_window, segment_window
    from semiostream.sources.windows import plan_windows

    spec = settings.spec
    with _open(row, spec.fps) as src:
        start, stop = segment_frames(row, src.num_frames, src.fps)
        if row.onset is not None and start >= src.num_frames:
            raise ExtractError(
                f"onset {row.onset:g} s is past the end of the video ({src.num_frames} frames at "
                f"{src.fps:g} fps = {src.num_frames / src.fps:.2f} s); fix onset in the manifest"
            )
        ranges = [(start + a, start + b) for a, b in plan_windows(stop - start, spec.window, None, spec.min_frames)]
        if not ranges:
            raise ExtractError(
                f"the segment [{start}, {stop}) has {stop - start} frames, fewer than min_frames="
                f"{spec.min_frames}; widen onset/offset or drop the row"
            )
        note = ""
        if row.roi is not None:
            try:
                roi = as_roi(row.roi, src.width, src.height).as_tuple()
            except ValueError as e:
                raise ExtractError(f"{e} (manifest roi)") from e
            rule = "manifest"
        elif detector is not None:
            choice = detector.locate(src.read(start, start + 1)[0])
            roi = choice.roi.as_tuple()
            rule = choice.rule
            if choice.fallback:
                note = choice.message
        else:
            roi, rule = None, "full frame"
        intensity = None
        if holds_window(spec):  # one intensity window for the whole segment, from its first frames
            intensity = segment_window(src.read(start, min(stop, start + spec.percentile_frames)), roi, spec)
        return _Plan(row, key, ranges, roi, src.fps, note, rule, intensity)


class _SourcePool:
    """One open source per thread (the last one used), so consecutive chunks of a video reuse it."""

    def __init__(self, fps: float) -> None:
        self.fps = fps  # the spec's rate: every video is read at it
        self._local = threading.local()
        self._open: list[Any] = []
        self._lock = threading.Lock()

    def get(self, row: Segment):
        cur = getattr(self._local, "cur", None)
        if cur is not None and cur[0] == (row.path, row.stream, row.fps):
            return cur[1]
        if cur is not None:
            cur[1].close()
        src = _open(row, self.fps)
        self._local.cur = ((row.path, row.stream, row.fps), src)
        with self._lock:
            self._open.append(src)
        return src

    def close(self) -> None:
        with self._lock:
            for src in self._open:
                with contextlib.suppress(Exception):
                    src.close()  # idempotent
            self._open.clear()


def extract_features(
    manifest: Manifest | Sequence[Segment],
    featurizer: Featurizer | Callable[[], Featurizer],
    cache: FeatureCache,
    settings: ExtractionSettings,
    detector: Any | None = None,
    workers: int = 2,
    chunk_windows: int = 4,
    show_progress: bool = True,
) -> ExtractionReport:
    """Make sure every row has a cache entry; compute the missing ones.

    Args:
        manifest: the rows to extract.
        featurizer: the engines' ``Scorer`` (anything with ``features(windows, rois)``), or a
            zero-argument factory, called only if some seizure is not cached yet.
        cache: where entries live.
        settings: spec, I3D digest and detector id (the cache key's non-video parts).
        detector: a :class:`~semiostream.detectors.base.RoiDetector` for rows without an ROI, or None
            for the full frame.
        workers: decoding threads.
        chunk_windows: windows per featurizer call (bounds the frames held in memory).
        show_progress: progress bar / lines on stderr.

    Returns:
        :class:`ExtractionReport`; failures are listed there, never raised.
    """
    rows = list(manifest.rows if isinstance(manifest, Manifest) else manifest)
    t0 = time.perf_counter()
    rep = ExtractionReport()
    workers = max(1, int(workers))
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
    stack = contextlib.ExitStack()
    try:
        # 1. content hashes -> keys; what is cached already
        with progress("hashing videos", len(rows), show_progress) as adv:
            futs = {pool.submit(cache.content_hash, r.path): r for r in rows}
            todo: list[tuple[Segment, str]] = []
            for fut in cf.as_completed(futs):
                r = futs[fut]
                adv(1)
                try:
                    key = settings.key_for(r, fut.result())
                except Exception as e:
                    rep.keys[r.key] = ""
                    rep.failed.append(_failure(r, e))
                    continue
                rep.keys[r.key] = key
                entry = cache.get(key) if cache.has(key) else None
                if entry is not None:
                    rep.cached.append(r.key)
                    rep.windows[r.key] = len(entry.features)
                    rep.crops[r.key] = entry.meta.get("crop") or _crop_record(
                        "manifest" if r.roi else "unrecorded", entry.roi, entry.meta.get("note", ""))
                else:
                    todo.append((r, key))
        cache.save_hashes()
        order = {r.key: i for i, r in enumerate(rows)}
        todo.sort(key=lambda t: order[t[0].key])
        rep.keys = {r.key: rep.keys[r.key] for r in rows}
        if not todo:
            rep.seconds = time.perf_counter() - t0
            return rep

        # 2. plan: open each video, segment -> windows, crop
        plans: list[_Plan] = []
        with progress("planning windows", len(todo), show_progress) as adv:
            futs2 = [(r, pool.submit(_plan_row, r, key, settings, detector)) for r, key in todo]
            for r, fut in futs2:
                adv(1)
                try:
                    plans.append(fut.result())
                except Exception as e:
                    rep.failed.append(_failure(r, e))
        for pl in plans:
            rep.crops[pl.row.key] = _crop_record(pl.crop_rule, pl.roi, pl.note)
            if pl.note:
                rep.notes.append(f"{pl.row.key}: {pl.note}")
        if not plans:
            rep.seconds = time.perf_counter() - t0
            return rep

        # 3. decode ahead in threads, featurize in this thread, write each seizure when complete
        feat = featurizer if hasattr(featurizer, "features") else featurizer()
        sources = _SourcePool(settings.spec.fps)
        stack.callback(sources.close)

        def read_chunk(pl: _Plan, ranges: list[tuple[int, int]]) -> list[np.ndarray]:
            src = sources.get(pl.row)
            return [src.read(a, b) for a, b in ranges]

        jobs = []
        for pl in plans:
            chunks = [pl.ranges[i:i + chunk_windows] for i in range(0, len(pl.ranges), chunk_windows)]
            pl.pending = len(chunks)
            jobs += [(pl, c) for c in chunks]
        total = sum(len(pl.ranges) for pl in plans)
        inflight: deque = deque()
        it = iter(jobs)

        def fill() -> None:
            while len(inflight) < 2 * workers:
                job = next(it, None)
                if job is None:
                    return
                pl, ranges = job
                inflight.append((pl, ranges, None if pl.failed else pool.submit(read_chunk, pl, ranges)))

        with progress(f"extracting I3D features of {len(plans)} seizures", total, show_progress) as adv:
            fill()
            while inflight:
                pl, ranges, fut = inflight.popleft()
                fill()
                pl.pending -= 1
                if pl.failed or fut is None:
                    adv(len(ranges))
                    continue
                try:
                    frames = fut.result()
                    kw = {} if pl.intensity is None else {"intensities": pl.intensity}
                    out = np.asarray(feat.features(frames, [pl.roi] * len(frames), **kw), np.float32)
                    if out.shape != (len(frames), NUM_STEPS, FEATURE_DIM):
                        raise ExtractError(
                            f"the featurizer returned {out.shape} for {len(frames)} windows; expected "
                            f"({len(frames)}, {NUM_STEPS}, {FEATURE_DIM})"
                        )
                    pl.features.append(out)
                except Exception as e:
                    pl.failed = True
                    rep.failed.append(_failure(pl.row, e))
                adv(len(ranges), description=f"{pl.row.key}")
                if pl.pending == 0 and not pl.failed:
                    feats = np.concatenate(pl.features)
                    meta = {"row": pl.row.to_dict(), "fps": pl.fps, "spec": settings.spec.to_dict(),
                            "i3d_digest": settings.i3d_digest, "detector": settings.detector,
                            "note": pl.note, "crop": _crop_record(pl.crop_rule, pl.roi, pl.note),
                            "intensity_window": list(pl.intensity) if pl.intensity else None,
                            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
                    cache.put(pl.key, CachedFeatures(feats, np.array([a for a, _ in pl.ranges]),
                                                     np.array([b for _, b in pl.ranges]), pl.roi, meta))
                    rep.computed.append(pl.row.key)
                    rep.windows[pl.row.key] = len(feats)
                    pl.features = []
                elif pl.pending == 0:
                    pl.features = []
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        stack.close()  # close the decoders' sources once no thread uses them
    rep.failed.sort(key=lambda f: f["row"])
    rep.seconds = time.perf_counter() - t0
    return rep


def _crop_record(rule: str, roi: Any, note: str = "") -> dict[str, Any]:
    """What the report says about one seizure's crop: the rule that applied, the ROI, why (fallbacks)."""
    rec: dict[str, Any] = {"rule": rule, "roi": list(roi) if roi else None}
    if note:
        rec["note"] = note
    return rec


def _failure(row: Segment, e: BaseException) -> dict[str, Any]:
    plain = isinstance(e, ExtractError) or type(e).__name__ == "SourceError"
    msg = str(e) if plain else f"{type(e).__name__}: {e}"
    log.warning("row %d (%s): %s; skipped", row.row, row.key, msg)
    return {"row": row.row, "key": row.key, "path": str(row.path), "error": msg}


def load_featureset(
    manifest: Manifest | Sequence[Segment], cache: FeatureCache, report: ExtractionReport
) -> FeatureSet:
    """The :class:`FeatureSet` of every row that has features (failed rows are left out)."""
    rows = list(manifest.rows if isinstance(manifest, Manifest) else manifest)
    parts = []
    for r in rows:
        key = report.keys.get(r.key)
        if not key or r.key not in report.windows:
            continue
        entry = cache.get(key)
        if entry is None:
            raise ExtractError(f"cache entry for {r.key} disappeared from {cache.root}; run the extraction again")
        parts.append((r, entry.features))
    return FeatureSet.from_parts(parts, feature_shape=(NUM_STEPS, FEATURE_DIM))
