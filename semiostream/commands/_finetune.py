"""``semiostream train --finetune``: the options of I3D fine-tuning and the run (:mod:`semiostream.trainer.finetune`).

Kept light: nothing here imports torch until a run starts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from semiostream.core.errors import UserError

#: option -> default; any other value given without --finetune is refused
_DEFAULTS = {"finetune_from": "Mixed_5b", "i3d_lr": 1e-4, "amp": "auto", "device": None, "no_grad_checkpointing": False,
             "no_augment": False, "windows_per_seizure": None, "checkpoint_every": 0, "resume": False}


def default_out() -> Path:
    """``runs/train-<date>-<time>``: the run directory of ``semiostream train`` when --out is not given."""
    return Path("runs") / time.strftime("train-%Y%m%d-%H%M%S")


def add_finetune_options(p: argparse.ArgumentParser) -> None:
    f = p.add_argument_group(
        "I3D fine-tuning (--finetune; without it, the paper's recipe on frozen Kinetics I3D features)")
    f.add_argument("--finetune", action="store_true",
                   help="train the top I3D endpoints and the classifier end to end on augmented windows, with "
                        "early stopping on held-out patients (fold 0 of --folds); the bundle carries the "
                        "fine-tuned I3D. --epochs, --batch-size, --lr (classifier), --patience, --seed and the "
                        "classifier options apply")
    f.add_argument("--finetune-from", default="Mixed_5b", metavar="ENDPOINT",
                   help="first trained I3D endpoint, Mixed_3b .. Mixed_5c (default Mixed_5b: Mixed_5b and Mixed_5c "
                        "are trained, the endpoints below run frozen)")
    f.add_argument("--i3d-lr", type=float, default=1e-4, help="Adam learning rate of the I3D (default 1e-4)")
    f.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                   help="mixed precision of the I3D: auto (default: bf16, or fp16 with loss scaling, on a CUDA GPU; "
                        "fp32 on the CPU), on (refused without a GPU), off (fp32)")
    f.add_argument("--device", help="cpu or cuda:N (default: the first CUDA GPU, else the CPU)")
    f.add_argument("--no-grad-checkpointing", action="store_true",
                   help="keep the trained endpoints' activations instead of recomputing them in the backward pass "
                        "(faster, more memory)")
    f.add_argument("--no-augment", action="store_true",
                   help="no augmentation (default: crop jitter in the person ROI, temporal jitter, horizontal flip, "
                        "intensity gain/offset and noise)")
    f.add_argument("--windows-per-seizure", type=int, metavar="N",
                   help="train on N windows of each seizure per epoch, drawn afresh each epoch (default: all)")
    f.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS",
                   help="also checkpoint every STEPS optimizer steps (default: after each epoch only)")
    f.add_argument("--resume", action="store_true",
                   help="continue the fine-tuning run in --out from its last checkpoint (same options; --epochs "
                        "and --patience may change)")


def finetune_options_given(args: argparse.Namespace) -> list[str]:
    """The fine-tuning options given with other values than their defaults, as ``--name``."""
    return [f"--{k.replace('_', '-')}" for k, v in _DEFAULTS.items() if getattr(args, k) != v]


def run_finetune(args: argparse.Namespace) -> int:
    """``train --finetune``: every option checked (one line each) before the data or the I3D are read."""
    if args.search:
        raise UserError("--search tunes the frozen-feature recipe; it does not combine with --finetune")
    if args.backend:
        raise UserError("--backend picks the engine that extracts frozen features; --finetune trains in PyTorch "
                        "on --device")
    if args.resume and args.out is None:
        raise UserError("--resume needs the --out of the fine-tuning run to continue")
    from semiostream.trainer.augment import Augment
    from semiostream.trainer.finetune import (
        DEFAULT_BATCH,
        DEFAULT_EPOCHS,
        FinetuneConfig,
        finetune_run,
        preflight,
    )
    from semiostream.trainer.manifest import ManifestError
    from semiostream.trainer.run import TrainerError
    from semiostream.trainer.train import TrainConfig

    from .extract import extract_config

    ext = extract_config(args)
    ext.show_progress = not args.quiet
    try:
        tcfg = TrainConfig(lstm_units=args.lstm_units, dense_units=args.dense_units, dropout=args.dropout,
                           recurrent_dropout=args.recurrent_dropout, loss=args.loss,
                           epochs=DEFAULT_EPOCHS if args.epochs is None else args.epochs,
                           batch_size=DEFAULT_BATCH if args.batch_size is None else args.batch_size, lr=args.lr,
                           patience=args.patience, seed=args.seed)
    except ValueError as e:
        raise UserError(str(e).replace("_", "-")) from e
    try:
        cfg = FinetuneConfig(extract=ext, out=args.out or default_out(), train=tcfg, bundle=args.bundle,
                             folds=args.folds, train_from=args.finetune_from, i3d_lr=args.i3d_lr, amp=args.amp,
                             device=args.device, grad_checkpointing=not args.no_grad_checkpointing,
                             augment=Augment.off() if args.no_augment else Augment(),
                             windows_per_seizure=args.windows_per_seizure, checkpoint_every=args.checkpoint_every,
                             resume=args.resume)
        preflight(cfg)
        if not args.manifest.is_file():
            raise UserError(f"manifest {args.manifest} does not exist; give the CSV (or Parquet) of the seizures")
        res = finetune_run(cfg)
    except (ManifestError, TrainerError) as e:  # FinetuneError is a TrainerError
        raise UserError(str(e)) from e
    print((res.out / "summary.md").read_text())
    print(f"run: {res.out}\nbundle: {res.bundle}")
    return 0
