"""``semiostream extract MANIFEST``: compute (or reuse) the I3D features of every seizure in a manifest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from semiostream.core.errors import UserError

ORDER = 40


def add_feature_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``extract`` and ``train``: what determines the features and where they live."""
    p.add_argument("manifest", type=Path,
                   help="CSV (or Parquet) with columns path, patient_id, seizure_id, label (FLE|TLE) and "
                        "optional onset, offset (seconds), roi (x0 y0 x1 y1), stream (ir|depth), fps, synthetic "
                        "(yes for generated clips: the bundle then says it was trained on synthetic data)")
    p.add_argument("--i3d", type=Path, metavar="PATH",
                   help="I3D weights (.safetensors, .ckpt, .pt, .h5); default: the file written by "
                        "`semiostream weights fetch`")
    p.add_argument("--spec", metavar="FILE|BUNDLE",
                   help="preprocessing spec: a JSON/YAML file of PreprocessSpec fields, or a bundle directory "
                        "whose spec to reuse (default: the paper's, percentile intensity window)")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   help="feature cache directory (default: ~/.cache/semiostream/features)")
    p.add_argument("--backend", help="engine backend for the I3D, e.g. torch-cpu-fp32, torch-cuda-fp16 "
                                     "(default: the fp32 PyTorch reference)")
    p.add_argument("--detector", choices=("full", "yolox", "maskrcnn"), default="full",
                   help="crop for rows without an roi: full frame (default), or the person+bed box of a detector")
    p.add_argument("--detector-weights", type=Path, metavar="PATH", help="detector weights (yolox: an .onnx file)")
    p.add_argument("--crop-rule", choices=("paper", "single-box"), default="paper",
                   help="with a detector: 'paper' (default) crops to the best person + best bed box, +20%%, and "
                        "uses the raw full frame if either is missing; 'single-box' crops to the one box found")
    p.add_argument("--intensity-scope", choices=("video", "window"),
                   help="percentile intensity window computed once per seizure from its first frames "
                        "('video', the default, like the paper's whole-video conversion) or per 2-s window "
                        "('window'); overrides the spec")
    p.add_argument("--workers", type=int, default=2, help="video decoding threads (default 2)")


def load_spec(value: str | None):
    """A PreprocessSpec from a JSON/YAML file or a bundle directory (None = defaults)."""
    from semiostream.core.preprocess_spec import PreprocessSpec
    from semiostream.models.bundle import BundleError, read_bundle_json

    if value is None:
        return PreprocessSpec()
    p = Path(value)
    try:
        if p.is_dir():
            return PreprocessSpec.from_dict(read_bundle_json(p)["preprocess"])
        if not p.is_file():
            raise UserError(f"--spec {p} does not exist; give a JSON/YAML file or a bundle directory")
        text = p.read_text()
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text)
        else:
            d = json.loads(text)
        if not isinstance(d, dict):
            raise UserError(f"--spec {p} must hold a mapping of PreprocessSpec fields")
        return PreprocessSpec.from_dict(d.get("preprocess", d))
    except (BundleError, ValueError, TypeError) as e:
        raise UserError(f"--spec {p}: {e}") from e


def extract_config(args: argparse.Namespace):
    from semiostream.trainer.run import ExtractConfig, TrainerError

    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    try:
        spec = load_spec(args.spec)
        if getattr(args, "intensity_scope", None):
            import dataclasses

            spec = dataclasses.replace(spec, intensity_scope=args.intensity_scope)
        return ExtractConfig(manifest=args.manifest, i3d=args.i3d, spec=spec, cache=args.cache,
                             backend=args.backend, detector=args.detector,
                             detector_weights=args.detector_weights, crop_rule=args.crop_rule,
                             workers=args.workers)
    except TrainerError as e:
        raise UserError(str(e)) from e


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "extract",
        help="compute the I3D features of every seizure in a manifest (cached, resumable)",
        description=(
            "Cuts each seizure's clinical segment (onset..offset) into 2-second windows, crops and "
            "preprocesses them with the spec, and stores the I3D features [windows, 7, 1024] in a cache "
            "keyed by the video's content, the spec and the I3D weights. Interrupted runs resume; a video "
            "that fails is reported and skipped. Exit status 1 if any video failed."
        ),
    )
    add_feature_options(p)
    p.add_argument("--report", type=Path, metavar="FILE", help="also write the extraction report as JSON")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from semiostream.trainer.manifest import ManifestError
    from semiostream.trainer.report import write_json
    from semiostream.trainer.run import TrainerError, extract

    cfg = extract_config(args)
    try:
        prep = extract(cfg)
    except (ManifestError, TrainerError) as e:
        raise UserError(str(e)) from e
    rep = prep.extraction
    print(f"{prep.manifest.summary()}\n{rep.summary()}")
    for key, crop in rep.crops.items():
        if args.detector != "full" and crop["rule"] not in ("person+bed", "manifest"):
            print(f"crop: {key}: {crop['rule']}")
    for note in rep.notes:
        print(f"note: {note}")
    print(f"cache: {prep.cache.root}")
    if args.report:
        write_json(args.report, rep.to_dict())
    return 1 if rep.failed else 0
