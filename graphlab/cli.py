"""The ``graphlab`` command line: ``datasets``, ``train``, ``presets`` and ``zoo``.

Building the parser imports neither torch nor PyG (``graphlab --help`` is instant); each command
imports what it needs. Mistakes a person can fix (unknown names, invalid budgets, missing data,
no CUDA, an output folder that is locked, holds another run or cannot be written, a damaged
checkpoint) print one line to stderr and exit with status 2; ``--debug`` shows the traceback.
Anything else is a bug in graphlab and prints its traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
import traceback
from pathlib import Path

__all__ = ["main", "build_parser", "format_table"]

#: exit status for a mistake the user can fix (argparse uses the same for bad arguments)
USAGE_ERROR = 2


class UsageError(Exception):
    """A problem with the command's input, reported as one line (no traceback)."""


def format_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A plain-text table (markdown pipe syntax, so it pastes into the README)."""
    if not rows:
        return "(no rows)"
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]

    def cell(v) -> str:
        if isinstance(v, float):
            if math.isnan(v):
                return "nan"
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
        return "" if v is None else str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(columns), sep, *(line(b) for b in body)])


def _version() -> str:
    from graphlab import __version__

    return __version__


def _cmd_datasets(args: argparse.Namespace) -> int:
    from graphlab.datasets import known_datasets, locate_raw

    rows = [{"dataset": i.name, "task": i.level, "size": i.size,
             "raw files": locate_raw(i.name, args.root)} for i in known_datasets()]
    print(format_table(rows))
    return 0


def _fmt(mean: float | None, std: float | None) -> str:
    return "n/a" if mean is None else f"{mean:.4f} ± {std:.4f}"


def _cmd_train(args: argparse.Namespace) -> int:
    from graphlab.datasets.catalog import dataset_info
    from graphlab.models.registry import available_models
    from graphlab.train import TrainConfig, check_device, train

    kwargs = {}
    for key in ("hidden_channels", "num_layers", "dropout", "readout"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    # flags given explicitly (argparse defaults are None so that a preset can tell)
    given = {key: getattr(args, key) for key in _TRAIN_DEFAULTS if getattr(args, key) is not None}
    if args.preset is not None:
        from graphlab.presets import resolve_preset

        preset = resolve_preset(args.model, args.dataset, args.preset)
        seeds = given.pop("seeds", None)
        if kwargs:
            given["model_kwargs"] = kwargs
        out = args.out or f"runs/{args.dataset}-{args.model}-{args.preset}"
        # explicit flags override the preset; each is recorded as a deviation
        config = preset.train_config(out=out, root=args.root, device=args.device,
                                     progress=not args.no_progress, seeds=seeds, **given)
    else:
        out = args.out or f"runs/{args.dataset}-{args.model}"
        # everything that can be checked without data is checked before anything is loaded
        config = TrainConfig(dataset=args.dataset, model=args.model, model_kwargs=kwargs,
                             out=out, root=args.root, device=args.device,
                             progress=not args.no_progress, **{**_TRAIN_DEFAULTS, **given})
    dataset_info(args.dataset)
    if args.model.lower() not in available_models():
        raise UsageError(f"unknown model {args.model!r}; known models: "
                         f"{', '.join(available_models())}")
    check_device(args.device)

    res = train(config, overwrite=args.overwrite)
    metric, summary = res["metric"], res["summary"]
    rows = [{"run": s["run"], "split": s["split"], "best epoch": s["best_epoch"],
             f"valid {metric}": s["valid"], f"test {metric}": s["test"],
             "s/epoch": s["seconds_per_epoch"]} for s in res["runs"]]
    print(format_table(rows))
    print(f"\n{res['dataset']} / {res['model']}: test {metric} "
          f"{_fmt(summary['test_mean'], summary['test_std'])} (valid "
          f"{_fmt(summary['valid_mean'], summary['valid_std'])}) over {summary['num_runs']} "
          f"run(s); {summary['num_params']:,} parameters; protocol: {res['extra']['protocol']}")
    if "preset" in res["extra"]:
        preset = res["extra"]["preset"]
        print(f"preset {preset['name']!r} ({preset['dataset_key']}): {preset['source']}; "
              f"paper: {preset['paper_result'] or 'n/a'}; {len(preset['deviations'])} "
              f"deviation(s) listed in results.json")
    print(f"results: {Path(out) / 'results.json'}")
    return 0


#: ``graphlab train`` budget flags and their values without a preset
_TRAIN_DEFAULTS = {"epochs": 100, "seeds": 1, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.0,
                   "min_epochs": None}


def _cmd_presets(args: argparse.Namespace) -> int:
    from graphlab.presets import preset_rows

    print(format_table(preset_rows(args.name),
                       ["model", "dataset key", "datasets", "epochs", "runs", "deviations",
                        "runner", "source"]))
    return 0


def _add_debug(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show the full traceback of an error")


def build_parser() -> argparse.ArgumentParser:
    """The ``graphlab`` argument parser (imports no torch)."""
    parser = argparse.ArgumentParser(
        prog="graphlab", description="graphlab: drop-in PyTorch Geometric layers for published "
        "methods, weight-space metanetworks and their benchmarks.")
    parser.add_argument("--version", action="version", version=f"graphlab {_version()}")
    _add_debug(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("datasets", help="list datasets, their size and where raw files are")
    p.add_argument("--root", default=None, help="dataset root (default: the cache)")
    _add_debug(p, argparse.SUPPRESS)
    p.set_defaults(fn=_cmd_datasets)

    p = sub.add_parser(
        "train", help="train a model on a dataset over several seeds",
        description="Train a registered model on a registered dataset with best-validation "
        "selection over several seeds/folds. The output folder records the configuration; "
        "rerunning the same command resumes where it stopped.")
    p.add_argument("--dataset", required=True, help="dataset name (see `graphlab datasets`)")
    p.add_argument("--model", required=True, help="registered model name (gin, gcn, ...)")
    p.add_argument("--preset", default=None, metavar="NAME",
                   help="train with a published configuration (`paper`; see `graphlab "
                   "presets`); explicit flags override it and are recorded as deviations")
    p.add_argument("--epochs", type=int, default=None, help="default 100")
    p.add_argument("--seeds", type=int, default=None,
                   help="number of runs (seed i on split/fold i of the dataset's protocol; "
                   "default 1)")
    p.add_argument("--min-epochs", type=int, default=None,
                   help="early stopping never ends a run before this many epochs (default: any "
                        "time)")
    p.add_argument("--batch-size", type=int, default=None, help="default 32")
    p.add_argument("--lr", type=float, default=None, help="default 1e-3")
    p.add_argument("--weight-decay", type=float, default=None, help="default 0")
    p.add_argument("--hidden-channels", type=int, default=None)
    p.add_argument("--num-layers", type=int, default=None)
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--readout", default=None, help="graph readout aggregation (mean, sum, max, ...)")
    p.add_argument("--out", default=None,
                   help="output folder (default runs/DATASET-MODEL); rerun to resume")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the output folder's contents and start over")
    p.add_argument("--root", default=None, help="dataset root (default: the cache)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true")
    _add_debug(p, argparse.SUPPRESS)
    p.set_defaults(fn=_cmd_train)

    p = sub.add_parser("presets", help="list the published training presets (model, dataset, "
                       "source)")
    p.add_argument("--name", default="paper", help="preset name (default: paper)")
    _add_debug(p, argparse.SUPPRESS)
    p.set_defaults(fn=_cmd_presets)

    from graphlab.zoo.cli import add_zoo_parser  # noqa: PLC0415 - `graphlab zoo ...`

    add_zoo_parser(sub)
    return parser


def _user_error_types() -> tuple[type[BaseException], ...]:
    # imported lazily: only once a command has run (and imported torch) can these occur
    types: list[type[BaseException]] = [UsageError, ValueError, OSError]
    try:
        from graphlab.datasets.catalog import DataUnavailableError

        types.append(DataUnavailableError)
    except ImportError:  # pragma: no cover - a broken install is itself a bug to show
        pass
    return tuple(types)


def main(argv: list[str] | None = None) -> int:
    """Run the ``graphlab`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print(f"graphlab {args.command}: interrupted (rerun the same command to resume)",
              file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit statuses
        if debug:
            raise
        if isinstance(exc, _user_error_types()):
            message = str(exc) or type(exc).__name__
            if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
                message = f"{exc.filename}: {exc.strerror}"
            print(f"graphlab {args.command}: error: {message}", file=sys.stderr)
            return USAGE_ERROR
        traceback.print_exc()
        print(f"graphlab {args.command}: internal error ({type(exc).__name__}); this is a bug in "
              "graphlab, please report it with the traceback above", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
