"""Zoo health: build every zoo preset and report whether its members are worth learning from
(accuracy histogram, fraction above chance, per-hyperparameter spread, diverged members, build
time per member; reconstruction PSNR for the INR zoo), then, in the full run, re-run the
graph-of-networks analysis (`graphlab zoo analyze`: StatNN / GMN prediction on every split,
the zoo graph and node-level prediction, barrier vs width, layer collapse) on the healthy
digits-CNN zoos (varied architectures, and the one-architecture Small-CNN-Zoo analogue).

    python -m benchmarks.zoo_health [--quick] [--out runs/zoo_health] [--presets a,b]

The same by hand, one zoo at a time (each build prints and saves health.{json,md,png}):

    graphlab zoo build --preset digits-cnn --size 200 --out runs/zoos/digits-cnn --workers 2
    graphlab zoo build --preset digits-inr --size 1797 --out runs/zoos/digits-inr --workers 2
    graphlab zoo analyze --zoo runs/zoos/digits-cnn --out runs/zoo_analysis/digits-cnn --quick

Context: the Small CNN Zoo (Unterthiner et al. 2020) trains 30k CNNs of one architecture per
dataset, varying optimizer, learning rate, initialisation, dropout, weight decay and train
fraction, so that test accuracies spread widely above chance (CIFAR-10: about 0.1 to 0.55).
The digits zoos here should look like that: most members well above chance, a wide spread.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import TaskResult, print_row, register, run_script

#: members per preset: (quick, full); the full sizes are zoo-tasks' and the INR zoo is every image
SIZES = {"digits-mlp": (8, 300), "digits-cnn": (8, 200), "digits-cnn-fixed": (6, 200),
         "arch-family": (6, 150),
         "random-nets": (6, 200), "digits-inr": (60, 1797)}
#: zoos the full run analyses (graph of networks, prediction, figures)
ANALYZE = ("digits-cnn", "digits-cnn-fixed")

NOTES = ("Sizes per preset (quick / full): " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in
                                                           SIZES.items()) +
         ". `above chance` = test accuracy above 0.1 + 0.05 (3 binomial standard deviations of "
         "a chance classifier on the 540 test digits); diverged members count as not above. "
         "`s/member` is the training time recorded with each member (batched presets: its "
         "share of its batch), on a shared, loaded CPU: compare presets only within one run. "
         "The INR zoo is fitted as one batched model per chunk of 512 images. Builds resume: "
         "members already in a zoo folder (same preset, seed and format) are kept, so "
         "`build_s` is the wall time of what remained to build, `s/member` each member's own.")


def build_and_report(preset: str, size: int, root: Path, out: Path, workers: int
                     ) -> tuple[dict[str, Any], str, Path | None]:
    from graphlab.zoo import build_zoo, load_zoo
    from graphlab.zoo.health import health_markdown, write_health

    t = time.perf_counter()
    zoo = load_zoo(build_zoo(preset, size, root / f"{preset}-{size}", seed=0, workers=workers,
                             progress=size > 50))
    wall = time.perf_counter() - t
    rep = write_health(zoo)
    png = zoo.path / "health.png"
    fig = None
    if png.exists():
        fig = out / f"health-{preset}.png"
        shutil.copyfile(png, fig)
    s = rep["summary"]
    row: dict[str, Any] = {"preset": preset, "members": rep["members"], "metric": rep["metric"],
                           "median": s["q50"], "q10": s["q10"], "q90": s["q90"],
                           "diverged": len(rep["diverged"]), "build_s": wall}
    if "train_seconds" in rep:
        row["s/member"] = rep["train_seconds"]["mean"]
    for k in ("frac_above_chance", "frac_above_2x_chance", "frac_above_0.5",
              "frac_psnr_above_30"):
        if k in rep:
            row[k] = rep[k]
    return row, health_markdown(rep), fig


@register("zoo-health", "model-zoo health: accuracy spread, above-chance fractions, INR PSNR; "
          "graph-of-networks analysis on the healthy zoos",
          paper="Unterthiner et al. 2020 (Small CNN Zoo)")
def run(quick: bool, out: Path, presets: list[str] | None = None) -> TaskResult:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    root = out / "zoos"
    presets = presets or list(SIZES)
    unknown = sorted(set(presets) - set(SIZES))
    if unknown:
        raise ValueError(f"unknown presets {unknown}; choose from {sorted(SIZES)}")
    rows, md, figures = [], [], []
    for preset in presets:
        row, text, fig = build_and_report(preset, SIZES[preset][0 if quick else 1], root, out,
                                          workers=1)  # one core: the machine is shared
        rows.append(row)
        print_row(row)
        md.append(text.replace("# Zoo health", "## Zoo health"))
        figures += [fig] if fig is not None else []
    config: dict[str, Any] = {"sizes": {p: SIZES[p][0 if quick else 1] for p in presets},
                              "zoo_root": str(root)}
    extra: dict[str, Any] = {}
    if not quick:  # issue 20 part 5: the analysis re-run on the healthy zoos
        from graphlab.zoo import analyze, load_zoo

        for preset in [p for p in ANALYZE if p in presets]:
            dest = out / f"analysis-{preset}"
            zoo = load_zoo(root / f"{preset}-{SIZES[preset][1]}")
            t = time.perf_counter()
            # analyze's quick budget (15 metanet epochs, 3 barrier widths, 10 members in the
            # collapse curve): the fair metanet comparison is zoo-tasks' / inr-classification's
            extra[f"analysis-{preset}"] = analyze(zoo, dest, quick=True, seeds=(0, 1, 2),
                                                  models=("statnn", "gmn"))
            print(f"[analysis] {preset} in {time.perf_counter() - t:.0f} s", flush=True)
            md.append((dest / "summary.md").read_text().replace("# Zoo analysis",
                                                               "## Zoo analysis"))
            for png in sorted(dest.glob("*.png")):
                figures.append(shutil.copyfile(png, out / f"{preset}-{png.name}"))
        config["analyzed"] = [p for p in ANALYZE if p in presets]
    by = {r["preset"]: r for r in rows}
    ours = []
    if "digits-cnn" in by:
        c = by["digits-cnn"]
        ours.append(f"digits-cnn {c['frac_above_2x_chance']:.0%} members > 2x chance, median "
                    f"acc {c['median']:.2f}")
    if "digits-inr" in by:
        ours.append(f"digits-inr PSNR median {by['digits-inr']['median']:.1f} dB")
    return TaskResult(rows, paper="CIFAR10 Small CNN Zoo accuracies spread ~0.1-0.55",
                      ours="; ".join(ours), notes=NOTES, markdown="\n".join(md),
                      figures=figures, config=config, extra=extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/zoo_health"))
    parser.add_argument("--presets", default=None, help=f"comma list of {list(SIZES)}")
    args = parser.parse_args(argv)
    presets = args.presets.split(",") if args.presets else None
    return run_script("zoo-health", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out, presets))


if __name__ == "__main__":
    sys.exit(main())
