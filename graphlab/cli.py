"""The ``graphlab`` command line: ``datasets``, ``train`` and ``bench``."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

__all__ = ["main", "format_table"]


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


def _cmd_datasets(args: argparse.Namespace) -> int:
    from graphlab.datasets import known_datasets, locate_raw

    rows = [{"dataset": i.name, "task": i.level, "size": i.size,
             "raw files": locate_raw(i.name, args.root)} for i in known_datasets()]
    print(format_table(rows))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from graphlab.train import TrainConfig, train

    kwargs = {}
    for key in ("hidden_channels", "num_layers", "dropout", "readout"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    out = args.out or f"runs/{args.dataset}-{args.model}"
    config = TrainConfig(dataset=args.dataset, model=args.model, epochs=args.epochs,
                         seeds=args.seeds, batch_size=args.batch_size, lr=args.lr,
                         weight_decay=args.weight_decay, model_kwargs=kwargs, out=out,
                         root=args.root, device=args.device, progress=not args.no_progress)
    res = train(config)
    rows = [{"run": s["run"], "split": s["split"], "best epoch": s["best_epoch"],
             f"valid {res['metric']}": s["valid"], f"test {res['metric']}": s["test"],
             "s/epoch": s["seconds_per_epoch"]} for s in res["seeds"]]
    print(format_table(rows))
    print(f"\n{res['dataset']} / {res['model']}: test {res['metric']} "
          f"{res['test_mean']:.4f} ± {res['test_std']:.4f} (valid {res['valid_mean']:.4f} ± "
          f"{res['valid_std']:.4f}) over {res['num_runs']} run(s); {res['num_params']:,} "
          f"parameters; protocol: {res['protocol']}")
    print(f"results: {Path(out) / 'results.json'}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from graphlab.bench import discover

    tasks = discover()
    if args.list:
        print(format_table([{"task": t.name, "quick suite": t.in_quick_suite,
                             "description": t.description} for t in tasks.values()]))
        return 0
    names = args.tasks or [n for n, t in tasks.items() if t.in_quick_suite or not args.quick]
    unknown = [n for n in names if n not in tasks]
    if unknown:
        print(f"unknown benchmark task(s): {', '.join(unknown)}; known: {', '.join(tasks)}",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    results: dict[str, list[dict]] = {}
    summary: list[dict] = []
    for name in names:
        task = tasks[name]
        print(f"== {name}: {task.description}", flush=True)
        start = time.perf_counter()
        task_out = out / name
        task_out.mkdir(parents=True, exist_ok=True)
        try:
            results[name] = task.fn(args.quick, task_out)
            status = "ok"
        except Exception as exc:  # noqa: BLE001 - one failing task must not hide the others
            status = f"FAILED: {type(exc).__name__}: {exc}"
            print(f"   {status}", file=sys.stderr)
        elapsed = time.perf_counter() - start
        summary.append({"task": name, "status": status, "rows": len(results.get(name, [])),
                        "seconds": round(elapsed, 1)})
        print(f"   done in {elapsed:.0f} s", flush=True)
    # each task's rows have their own columns: one table per task, then the run summary
    for name, task_rows in results.items():
        print(f"\n### {name}\n")
        print(format_table(task_rows))
    print("\n### summary\n")
    print(format_table(summary))
    (out / "bench.json").write_text(json.dumps({"summary": summary, "results": results},
                                               indent=2, default=str))
    failed = [row["task"] for row in summary if row["status"] != "ok"]
    if failed:
        print(f"\nfailed tasks: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datasets", help="list datasets, their size and where raw files are")
    p.add_argument("--root", default=None)
    p.set_defaults(fn=_cmd_datasets)

    p = sub.add_parser("train", help="train a model on a dataset over several seeds")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seeds", type=int, default=1,
                   help="number of runs (seed i on split/fold i of the dataset's protocol)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--hidden-channels", type=int, default=None)
    p.add_argument("--num-layers", type=int, default=None)
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--readout", default=None, help="graph readout aggregation (mean, sum, max, ...)")
    p.add_argument("--out", default=None, help="output folder (rerun to resume)")
    p.add_argument("--root", default=None, help="dataset root (default: the cache)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=_cmd_train)

    p = sub.add_parser("bench", help="run registered benchmarks and reproductions")
    p.add_argument("tasks", nargs="*")
    p.add_argument("--quick", action="store_true", help="the minutes-scale configuration")
    p.add_argument("--list", action="store_true", help="list registered tasks")
    p.add_argument("--out", default="runs/bench")
    p.set_defaults(fn=_cmd_bench)

    from graphlab.metanets.cli import add_zoo_parser  # noqa: PLC0415 - `graphlab zoo ...`

    add_zoo_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
