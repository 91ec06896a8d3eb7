"""``semiostream train MANIFEST``: patient-grouped CV (or random search), final model, bundle and report."""

from __future__ import annotations

import argparse
from pathlib import Path

from semiostream.core.errors import UserError

from ._finetune import add_finetune_options, default_out, finetune_options_given, run_finetune
from .extract import add_feature_options, extract_config

ORDER = 41


def _pair(kind):
    def parse(text: str):
        parts = text.replace(",", " ").split()
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"{text!r}: give two numbers LO,HI")
        try:
            return tuple(kind(v) for v in parts)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None
    return parse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the FLE/TLE classifier: features, patient-grouped 5-fold CV, model bundle, report",
        description=(
            "Extracts (or reuses cached) I3D features, splits the seizures into folds grouped by patient and "
            "stratified by label, cross-validates the paper's recipe (class-weighted MSE, Adam 1e-3, best "
            "validation macro F1 epoch kept) or runs a random hyperparameter search (--search N), retrains "
            "the best configuration on all data and writes a model bundle plus report.json, plots and "
            "summary.md into --out. The reported estimate comes from nested cross-validation by default "
            "(epoch and configuration chosen on inner folds of each outer training part; the outer folds only "
            "measure); --protocol paper reports the paper's own protocol instead, whose numbers are optimistic "
            "(chosen and measured on the same folds). The paper's 2000 epochs x batch 500 take long on a CPU; "
            "try --epochs 200 first."
        ),
    )
    add_feature_options(p)
    p.add_argument("--out", type=Path, help="run directory (default: runs/train-<date>-<time>)")
    p.add_argument("--bundle", type=Path, help="where to write the model bundle (default: <out>/bundle)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed for folds, initialisation and search (default 0)")
    p.add_argument("--protocol", choices=("nested", "paper"), default="nested",
                   help="how the reported CV estimate is made: 'nested' (default; model selection on inner folds, "
                        "unbiased) or 'paper' (selection on the reported folds, as the paper did; optimistic)")
    p.add_argument("--inner-folds", type=int, default=4,
                   help="inner folds of the nested protocol (default 4: about as many patients per inner "
                        "validation part as the paper's outer folds had)")
    g = p.add_argument_group("training recipe (defaults: the paper's)")
    g.add_argument("--epochs", type=int, help="epochs (default 2000; 20 with --finetune)")
    g.add_argument("--batch-size", type=int, help="windows per minibatch (default 500; 8 with --finetune)")
    g.add_argument("--loss", choices=("mse", "bce"), default="mse", help="class-weighted loss (default mse)")
    g.add_argument("--lstm-units", type=_pair(int), default=(128, 64), metavar="U1,U2",
                   help="LSTM widths (default 128,64)")
    g.add_argument("--dense-units", type=_pair(int), default=(64, 32), metavar="D1,D2",
                   help="hidden dense widths (default 64,32)")
    g.add_argument("--dropout", type=float, default=0.5, help="dropout (default 0.5)")
    g.add_argument("--recurrent-dropout", type=float, default=0.3, help="recurrent dropout (default 0.3)")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3; of the classifier with "
                                                          "--finetune)")
    g.add_argument("--patience", type=int, help="stop a fold after this many epochs without a better "
                                                "validation F1 (default: run all epochs)")
    s = p.add_argument_group("random search")
    s.add_argument("--search", type=int, default=0, metavar="N",
                   help="try N configurations (the base one first) instead of one")
    s.add_argument("--epochs-range", type=_pair(int), default=(50, 2000), metavar="LO,HI",
                   help="searched epochs (default 50,2000; shrink for quick runs)")
    s.add_argument("--batch-range", type=_pair(int), default=(50, 2000), metavar="LO,HI",
                   help="searched batch sizes (default 50,2000)")
    add_finetune_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.finetune:
        return run_finetune(args)
    given = finetune_options_given(args)
    if given:
        raise UserError(f"{', '.join(given)} belong(s) to I3D fine-tuning: add --finetune, or drop them")
    from semiostream.trainer.manifest import ManifestError
    from semiostream.trainer.run import RunConfig, TrainerError, train_run
    from semiostream.trainer.search import SearchSpace
    from semiostream.trainer.train import TrainConfig

    ext = extract_config(args)
    ext.show_progress = not args.quiet
    try:
        tcfg = TrainConfig(lstm_units=args.lstm_units, dense_units=args.dense_units, dropout=args.dropout,
                           recurrent_dropout=args.recurrent_dropout, loss=args.loss,
                           epochs=2000 if args.epochs is None else args.epochs,
                           batch_size=500 if args.batch_size is None else args.batch_size, lr=args.lr,
                           patience=args.patience, seed=args.seed)
        space = SearchSpace(epochs=args.epochs_range, batch_size=args.batch_range)
    except ValueError as e:
        raise UserError(str(e).replace("_", "-")) from e
    if args.search < 0:
        raise UserError("--search N needs N >= 0")
    out = args.out or default_out()
    try:
        cfg = RunConfig(extract=ext, out=out, folds=args.folds, seed=args.seed, train=tcfg,
                        search_trials=args.search, space=space, bundle=args.bundle, protocol=args.protocol,
                        inner_folds=args.inner_folds)
        res = train_run(cfg)
    except (ManifestError, TrainerError) as e:
        raise UserError(str(e)) from e
    print((res.out / "summary.md").read_text())
    print(f"run: {res.out}\nbundle: {res.bundle}")
    return 0
