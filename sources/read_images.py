"""Folders of 16-bit (or 8-bit) grayscale PNG or TIFF frames, decoded by DALI.

Frames are the folder's ``*.png`` / ``*.tif`` / ``*.tiff`` files in the order of the frame numbers in their
names (``f2`` before ``f10``; zero-padded names sort the same either way). Hidden files (``.name``) are
never frames.

**What a frame folder is** (:func:`frame_folder_problem`, the one rule every command applies, when a
folder is scanned for inputs and when one is opened): a folder that directly holds

1. at least :data:`MIN_FOLDER_FRAMES` (9, the shortest window a bundle scores) PNG/TIFF images,
2. each with a frame number in its name (the last run of digits: ``frame_000123.png``, ``0007.tif``),
   no two the same, so the frame order is the numbers' order,
3. and no video files (``.mkv``, ``.mp4``, ``.avi``, ``.npy``, ``.dcm`` ...) beside them: images next to
   recordings are previews or thumbnails, not frames.

Other files (a README, a CSV of timestamps) may sit beside the frames; sub-folders are separate inputs.

Decoding happens inside a DALI graph:
``fn.decoders.image(..., output_type=types.ANY_DATA, dtype=types.UINT16)`` on device ``"cpu"``, or
``"mixed"`` (nvImageCodec / nvTIFF on the GPU) with ``device="gpu"``. Both are lossless for 16-bit PNG and
TIFF (tested bit-exact on CPU).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .source import Source, SourceError, supported_suffixes

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
#: fewest frames a frame folder holds (see the module docstring)
MIN_FOLDER_FRAMES = 9
_MODES_16 = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def natural_key(name: str) -> list[Any]:
    """Sort key that orders embedded numbers numerically (``f2`` < ``f10``)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_frames(folder: Path) -> list[Path]:
    """The (non-hidden) image files of ``folder`` in frame order (frame number, then natural name order)."""
    files = [p for p in folder.iterdir()
             if not p.name.startswith(".") and p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]

    def order(p: Path) -> tuple[int, list[Any]]:
        k = frame_number(p.name)
        return (-1 if k is None else k, natural_key(p.name))

    return sorted(files, key=order)


def frame_number(name: str) -> int | None:
    """The frame number in a file name: its stem's last run of digits (None if it has none)."""
    runs = re.findall(r"\d+", Path(name).stem)
    return int(runs[-1]) if runs else None


def frame_folder_problem(folder: str | os.PathLike, names: list[str] | None = None) -> str | None:
    """Why ``folder`` is not a frame folder (the rule of the module docstring), or None when it is one.

    Args:
        folder: the folder.
        names: the names of the regular files directly in it (listed here when None).
    """
    folder = Path(folder)
    if names is None:
        names = [n for n in os.listdir(folder) if os.path.isfile(folder / n)]  # FIFOs, devices, loops: no
    names = [n for n in names if not n.startswith(".")]
    images = [n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    videos = set(supported_suffixes())
    beside = sorted(n for n in names if Path(n).suffix.lower() in videos)
    if not images:
        return f"holds no {'/'.join(IMAGE_SUFFIXES)} frames"
    what = f"its {len(images)} image{'s' if len(images) > 1 else ''}"
    if beside:
        return (f"{what} lie beside video files ({', '.join(beside[:3])}{' ...' if len(beside) > 3 else ''}): "
                "images next to recordings are previews, not frames")
    if len(images) < MIN_FOLDER_FRAMES:
        return f"{what} are fewer than the {MIN_FOLDER_FRAMES} frames a frame folder holds"
    numbers: dict[int, str] = {}
    for n in sorted(images, key=natural_key):
        k = frame_number(n)
        if k is None:
            return f"image {n!r} has no frame number in its name (frames are named like frame_000123.png)"
        if k in numbers:
            return f"images {numbers[k]!r} and {n!r} have the same frame number {k}"
        numbers[k] = n
    return None


def decode_pipeline_def():
    """The DALI decoding graph (imported lazily so this module loads without DALI).

    Returns a ``@pipeline_def`` function ``decode_images(device, dtype_bits)`` whose single input
    ``"encoded"`` takes one encoded file per sample (uint8 bytes) and whose output is ``[H, W, 1]``
    uint16 (or uint8) per sample, on the CPU (``device="cpu"``) or the GPU (``device="gpu"``).
    """
    import nvidia.dali.fn as fn
    import nvidia.dali.types as types
    from nvidia.dali import pipeline_def

    @pipeline_def
    def decode_images(device: str = "cpu", dtype_bits: int = 16):
        encoded = fn.external_source(name="encoded", dtype=types.UINT8, device="cpu")
        return fn.decoders.image(
            encoded,
            device="cpu" if device == "cpu" else "mixed",
            output_type=types.ANY_DATA,
            dtype=types.UINT16 if dtype_bits == 16 else types.UINT8,
        )

    return decode_images


class ImageFolderSource(Source):
    """A folder of grayscale PNG/TIFF frames, one file per frame.

    Args:
        path: the folder.
        fps: frame rate to report (image files store none); default 30.
        device: a :class:`~semiostream.core.device.Device` or its spelling: ``"cpu"``, ``"cuda:N"`` or DALI's
            ``"gpu"`` (the current CUDA device); on a GPU, DALI's ``mixed`` decoder on that device.
        batch: how many files DALI decodes per run.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0, device: Any = "cpu", batch: int = 64):
        from PIL import Image, UnidentifiedImageError

        from semiostream.core.device import Device

        self.path = Path(path)
        if not self.path.is_dir():
            raise SourceError(self.path, "is not a folder of image frames")
        if problem := frame_folder_problem(self.path):
            raise SourceError(
                self.path,
                f"not a frame folder: {problem}",
                f"a frame folder holds at least {MIN_FOLDER_FRAMES} numbered 16-bit (or 8-bit) PNG or TIFF frames "
                "and no videos",
            )
        self._files = list_frames(self.path)
        first = self._files[0]
        try:
            with Image.open(first) as im:
                self.width, self.height = im.size
                mode = im.mode
        except (UnidentifiedImageError, OSError) as e:
            raise SourceError(first, f"not a readable image ({e})") from e
        if mode in _MODES_16:
            self.bit_depth = 16
        elif mode == "L":
            self.bit_depth = 8
        else:
            raise SourceError(
                first,
                f"image mode {mode!r} is not grayscale",
                "write single-channel 16-bit (or 8-bit) frames",
            )
        self.device = Device.parse(device)
        self.num_frames = len(self._files)
        self.fps = float(fps)
        self._batch = int(batch)
        self._pipe: Any = None

    @property
    def files(self) -> list[Path]:
        return list(self._files)

    def _build(self) -> Any:
        self._pipe = decode_pipeline_def()(
            device=self.device.dali_device,
            dtype_bits=self.bit_depth,
            batch_size=self._batch,
            num_threads=2,
            device_id=self.device.dali_device_id,
            prefetch_queue_depth=1,
        )
        self._pipe.build()
        return self._pipe

    def _decode_batch(self, files: list[Path]) -> Any:
        """Decode files with DALI; returns the DALI TensorList (CPU or GPU)."""
        encoded = []
        for f in files:
            try:
                data = np.fromfile(f, dtype=np.uint8)
            except OSError as e:
                raise SourceError(f, f"cannot read ({e})") from e
            if data.size == 0:
                raise SourceError(f, "the file is empty (0 bytes)", "the frame was not written completely")
            encoded.append(data)
        pipe = self._pipe or self._build()
        try:
            pipe.feed_input("encoded", encoded)
            (out,) = pipe.run()
        except Exception as e:  # DALI raises RuntimeError/IndexError and invalidates the pipeline
            self._pipe = None
            raise self._which_failed(files, e) from e
        return out

    def _which_failed(self, files: list[Path], err: Exception) -> SourceError:
        from PIL import Image

        for f in files:
            try:
                with Image.open(f) as im:
                    im.load()
            except Exception as e:  # noqa: BLE001 - any decoder failure names the file
                return SourceError(f, f"corrupt or truncated image ({e})", "re-export this frame")
        first = str(err).strip().splitlines()
        return SourceError(
            self.path,
            f"DALI could not decode {files[0].name}..{files[-1].name} ({first[-1] if first else err})",
        )

    def _check(self, arr: np.ndarray, f: Path) -> None:
        if arr.shape[:2] != (self.height, self.width) or (arr.ndim == 3 and arr.shape[2] != 1):
            raise SourceError(
                f,
                f"frame has shape {arr.shape}, expected {self.height}x{self.width} grayscale",
                "all frames of a folder must have the same size",
            )

    def _read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.height, self.width), np.uint16)
        for s in range(start, stop, self._batch):
            files = self._files[s : min(s + self._batch, stop)]
            tl = self._decode_batch(files)
            if self.device.is_cuda:
                tl = tl.as_cpu()
            for j, f in enumerate(files):
                arr = np.asarray(tl[j])
                self._check(arr, f)
                out[s - start + j] = arr.reshape(self.height, self.width)
        return out

    def read_torch(self, start: int, stop: int) -> Any:
        """Frames ``[start, stop)`` as a torch ``[T, H, W]`` uint16 tensor on the decoder's device.

        On a GPU the frames go from DALI to torch via DLPack, without a host copy.
        """
        import torch

        if not self.device.is_cuda:
            return torch.from_numpy(self.read(start, stop))
        if not 0 <= start < stop <= self.num_frames:
            raise IndexError(f"{self.path}: frames [{start}, {stop}) outside [0, {self.num_frames})")
        parts = []
        for s in range(start, stop, self._batch):
            files = self._files[s : min(s + self._batch, stop)]
            tl = self._decode_batch(files)
            for j, f in enumerate(files):
                t = torch.from_dlpack(tl[j])
                self._check(np.empty(tuple(t.shape), np.uint8), f)
                parts.append(t.reshape(self.height, self.width))
        return torch.stack(parts)

    def close(self) -> None:
        self._pipe = None
