r"""Zoo analysis report: figures (PNG) and a Markdown summary (``graphlab zoo analyze``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graphlab.runfolder import atomic_write_json, atomic_write_text
from graphlab.zoo.store import Zoo

__all__ = ["analyze", "barrier_vs_width", "collapse_curve", "pyplot"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (figures are saved, never shown); matplotlib is
    the optional ``plot`` extra."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("zoo figures need matplotlib: pip install 'graphlab[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def barrier_vs_width(widths: Sequence[int] = (8, 16, 32, 64, 128), depth: int = 2,
                     pairs: int = 1, epochs: int = 10) -> list[dict[str, float]]:
    """Train pairs of digits MLPs (same hyperparameters, different seeds) per width and measure
    the test-loss interpolation barrier before and after weight matching."""
    from graphlab.metanets import interpolation_barrier, weight_matching
    from graphlab.zoo.training import digits_data, train_member

    _, _, xt, yt = digits_data()
    rows = []
    for w in widths:
        for p in range(pairs):
            cfg = {"arch": "mlp", "width": w, "depth": depth, "act": "relu", "lr": 0.05,
                   "batch_size": 64, "weight_decay": 0.0, "epochs": epochs,
                   "train_fraction": 1.0}
            a, ma = train_member({**cfg, "seed": 1000 + 2 * p})
            b, _ = train_member({**cfg, "seed": 1001 + 2 * p})
            bm = weight_matching(a, b)
            rows.append({"width": w, "pair": p, "test_acc": ma["test_acc"],
                         "barrier_naive": interpolation_barrier(a, b, (xt, yt))["barrier"],
                         "barrier_matched": interpolation_barrier(a, bm, (xt, yt))["barrier"]})
    return rows


def collapse_curve(zoo: Zoo, indices: Sequence[int],
                   sparsities: Sequence[float] = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99)
                   ) -> list[dict[str, float]]:
    """Fraction of members whose pruned neural graph has no input-to-output path (layer collapse),
    for global vs per-layer magnitude pruning and global SNIP pruning."""
    from graphlab.metanets import to_graph
    from graphlab.zoo.tasks import edge_importance, layer_collapse, prune_mask, snip_data

    rows = []
    cache = []
    for i in indices:
        m, ex = zoo.module(i), zoo.example_input(i)
        g = to_graph(m, ex)
        cache.append((g, edge_importance(m, ex, "magnitude"),
                      edge_importance(m, ex, "snip", snip_data(zoo, i))))
    for s in sparsities:
        row: dict[str, float] = {"sparsity": s}
        for name, k, scope in (("magnitude_global", 1, "global"), ("magnitude_layer", 1, "layer"),
                               ("snip_global", 2, "global")):
            row[name] = float(np.mean([layer_collapse(c[0], prune_mask(c[k], c[0], s, scope))
                                       for c in cache]))
        rows.append(row)
    return rows


def _table(rows: list[dict[str, Any]], cols: Sequence[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def analyze(zoo: Zoo, out: str | Path, quick: bool = False, seeds: Sequence[int] = (0, 1, 2),
            models: Sequence[str] | None = None, epochs: int | None = None) -> dict[str, Any]:
    """Write ``embedding.png``, ``pred_vs_true.png``, ``barrier_vs_width.png`` (trained
    presets), ``collapse.png`` and ``summary.md`` / ``summary.json`` into ``out``."""
    plt = pyplot()
    from sklearn.decomposition import PCA

    from graphlab.zoo.graph import node_task
    from graphlab.zoo.tasks import predict, statnn_features

    if not len(zoo):
        raise ValueError(f"zoo {zoo.path} has no finished members; build it first")
    metrics = zoo.records[0]["metrics"]
    if "test_acc" not in metrics and "complexity" not in metrics:
        raise ValueError(f"analyze reports on classifier zoos (test_acc) and random-nets "
                         f"(complexity); {zoo.preset!r} has neither (INR zoos: see the "
                         "inr-classification benchmark)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trained = "test_acc" in metrics
    target = "test_acc" if trained else "complexity"
    idx = zoo.indices
    res: dict[str, Any] = {"zoo": str(zoo.path), "preset": zoo.preset, "members": len(zoo)}
    # 1. embedding
    feats = statnn_features(zoo, idx)
    # robust z-scores, clipped: a few diverged members would otherwise own both PCA axes
    med = np.median(feats, 0)
    mad = np.median(np.abs(feats - med), 0) + 1e-8
    emb = PCA(2, random_state=0).fit_transform(np.clip((feats - med) / mad, -5, 5))
    colours = [(target, zoo.target(target, idx))]
    if trained:
        colours.append(("phase", zoo.target("phase", idx)))
    fig, axes = plt.subplots(1, len(colours), figsize=(5 * len(colours), 4))
    for ax, (name, c) in zip(np.atleast_1d(axes), colours):
        sc = ax.scatter(emb[:, 0], emb[:, 1], c=c, s=10, cmap="viridis")
        fig.colorbar(sc, ax=ax)
        ax.set_title(f"StatNN PCA coloured by {name}")
    fig.tight_layout()
    fig.savefig(out / "embedding.png", dpi=90)
    plt.close(fig)
    # 2. prediction on every split
    models = tuple(models or (("statnn", "gmn") if quick else ("statnn", "neural", "gmn")))
    epochs = epochs or (15 if quick else 40)
    rows = []
    preds = {}
    for split in zoo.splits:
        for model in models:
            r = predict(zoo, target, model, split, seeds=seeds, epochs=epochs)
            preds[(split, model)] = (r["true"], r["pred"])
            rows.append({k: v for k, v in r.items() if k not in ("pred", "true", "test_indices",
                                                                 "per_seed")})
    res["predict"] = rows
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 4))
    for ax, model in zip(np.atleast_1d(axes), models):
        t, p = preds[("id", model)]
        ax.scatter(t, p, s=8)
        lo, hi = min(t), max(t)
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel(f"true {target}")
        ax.set_ylabel("predicted")
        ax.set_title(f"{model} (id split)")
    fig.tight_layout()
    fig.savefig(out / "pred_vs_true.png", dpi=90)
    plt.close(fig)
    # 3. graph of networks
    res["zoo_graph"] = node_task(zoo, target, "id", seeds=seeds[:2] if quick else seeds)
    # 4. barrier vs width and layer collapse (trained digits presets)
    if trained:
        widths = (8, 32, 128) if quick else (8, 16, 32, 64, 128)
        bw = barrier_vs_width(widths, pairs=1 if quick else 2)
        res["barrier"] = bw
        fig, ax = plt.subplots(figsize=(5, 4))
        ws = sorted({r["width"] for r in bw})
        for key, lab in (("barrier_naive", "naive"), ("barrier_matched", "weight matching")):
            ax.plot(ws, [np.mean([r[key] for r in bw if r["width"] == w]) for w in ws], "o-",
                    label=lab)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("hidden width")
        ax.set_ylabel("test-loss barrier")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "barrier_vs_width.png", dpi=90)
        plt.close(fig)
        sample = idx[: 10 if quick else 40]
        cc = collapse_curve(zoo, sample)
        res["collapse"] = cc
        fig, ax = plt.subplots(figsize=(5, 4))
        for key in ("magnitude_global", "magnitude_layer", "snip_global"):
            ax.plot([r["sparsity"] for r in cc], [r[key] for r in cc], "o-", label=key)
        ax.set_xlabel("sparsity")
        ax.set_ylabel("fraction collapsed")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "collapse.png", dpi=90)
        plt.close(fig)
    atomic_write_json(out / "summary.json", res, indent=1)  # strict JSON: NaN -> null
    md = [f"# Zoo analysis: {zoo.preset} ({len(zoo)} members)", "",
          f"Target `{target}`; Kendall tau / R^2 on each split's test members, mean over seeds "
          f"{list(seeds)}.", "", _table(rows, ["split", "model", "n_train", "n_test", "tau_mean",
                                                "tau_std", "r2_mean", "r2_std",
                                                "tau_above_chance_mean"]), "",
          "## Graph of networks (node regression, id split)", "",
          _table(res["zoo_graph"], ["model", "embed", "edges", "tau", "r2"]), ""]
    if trained:
        md += ["## Interpolation barrier vs width", "",
               _table(res["barrier"], ["width", "pair", "test_acc", "barrier_naive",
                                       "barrier_matched"]), "",
               "## Layer collapse under pruning", "",
               _table(res["collapse"], ["sparsity", "magnitude_global", "magnitude_layer",
                                        "snip_global"]), ""]
    md += ["Figures: " + ", ".join(sorted(p.name for p in out.glob("*.png")))]
    atomic_write_text(out / "summary.md", "\n".join(md) + "\n")
    return res
