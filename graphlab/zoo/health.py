r"""Zoo health: is a zoo worth learning from?

A zoo whose members mostly sit at chance accuracy teaches a metanetwork little: predicting
"chance" is easy, and the members that matter are too few to rank (the first ``digits-cnn``
zoo had 18 of 120 members above 0.2 test accuracy). :func:`health_report` summarises the
distribution of a zoo's headline metric (test accuracy for trained classifiers, reconstruction
PSNR for INR zoos, spectral complexity for untrained ones): a histogram, quantiles, the fraction
of members above chance and above twice chance, the spread per value of every sampled
hyperparameter (as in the Small CNN Zoo's per-knob plots, Unterthiner et al. 2020), the diverged
members, and the build time per member. ``graphlab zoo build`` prints it and saves
``health.json``, ``health.md`` and ``health.png`` in the zoo folder (:func:`write_health`).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from graphlab.runfolder import atomic_write_bytes, atomic_write_json, atomic_write_text
from graphlab.zoo.store import Zoo

__all__ = ["CHANCE_MARGIN", "health_report", "health_markdown", "write_health"]

#: configuration keys that identify a member rather than sample a knob
_NOT_KNOBS = {"seed", "image_index", "label", "in_dim", "out_dim"}
_QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
#: "above chance" means above chance + this margin (3 binomial standard deviations of a
#: chance-level classifier on the 540 digits test images: 3 * sqrt(0.1 * 0.9 / 540) ~ 0.04)
CHANCE_MARGIN = 0.05


def _metric(zoo: Zoo) -> tuple[str, str]:
    """``(metric, kind)``: the headline metric of the zoo's members and what it measures."""
    m = zoo.records[0]["metrics"]
    if "test_acc" in m:
        return "test_acc", "accuracy"
    if "psnr" in m:
        return "psnr", "reconstruction"
    if "complexity" in m:
        return "complexity", "function"
    raise ValueError(f"zoo {zoo.path} has no test_acc, psnr or complexity metric to report on")


def _is_diverged(rec: dict[str, Any], metric: str) -> bool:
    """A member whose metric or any point of its training curve is missing or non-finite
    (the store writes NaN as null)."""
    v = rec["metrics"].get(metric)
    if v is None or not math.isfinite(float(v)):
        return True
    for point in rec.get("curve", []):
        if any(x is None or (isinstance(x, float) and not math.isfinite(x))
               for x in point.values()):
            return True
    return False


def _summary(x: np.ndarray) -> dict[str, float]:
    q = np.quantile(x, _QUANTILES) if len(x) else np.full(len(_QUANTILES), np.nan)
    return {"mean": float(np.mean(x)) if len(x) else math.nan,
            "std": float(np.std(x)) if len(x) else math.nan,
            **{f"q{int(round(100 * p)):02d}": float(v) for p, v in zip(_QUANTILES, q)}}


def health_report(zoo: Zoo, bins: int = 20) -> dict[str, Any]:
    """The health of a zoo's finished members (a JSON-ready dict).

    Keys: ``preset``, ``members``, ``metric`` (``test_acc``, ``psnr`` or ``complexity``),
    ``summary`` (mean, std and quantiles ``q00`` ... ``q100``), ``histogram`` (``edges``,
    ``counts``), ``diverged`` (indices whose metric or curve is non-finite), ``knobs`` (per
    sampled hyperparameter, per value: ``n``, ``mean``, ``min``, ``max`` of the metric), and
    ``train_seconds`` (mean and total, where recorded). Classifier zoos add ``chance``
    (1 / classes) and ``frac_above_chance`` (above chance + :data:`CHANCE_MARGIN`, so test-set
    noise around chance does not count), ``frac_above_2x_chance``, ``frac_above_0.5``; INR
    zoos add ``mse`` (its summary), ``frac_psnr_above_30`` and ``labels`` (members per class).

    Raises:
        ValueError: on an empty zoo.
    """
    if len(zoo) == 0:
        raise ValueError(f"zoo {zoo.path} has no finished members; build it first")
    metric, kind = _metric(zoo)
    recs = zoo.records
    diverged = [r["index"] for r in recs if _is_diverged(r, metric)]
    values = np.array([np.nan if r["metrics"].get(metric) is None else r["metrics"][metric]
                       for r in recs], dtype=np.float64)
    ok = np.isfinite(values)
    x = values[ok]
    if kind == "accuracy":
        lo, hi = 0.0, 1.0
    else:
        lo, hi = (float(x.min()), float(x.max())) if len(x) else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1.0
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    rep: dict[str, Any] = {
        "preset": zoo.preset, "members": len(recs), "metric": metric, "kind": kind,
        "summary": _summary(x), "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        "diverged": diverged}
    if kind == "accuracy":
        classes = int(recs[0]["config"].get("out_dim", 10))
        chance = 1.0 / classes
        # diverged members count as not above chance: they are in the denominator
        acc = np.where(ok, values, 0.0)
        rep.update({"chance": chance,
                    "frac_above_chance": float(np.mean(acc > chance + CHANCE_MARGIN)),
                    "frac_above_2x_chance": float(np.mean(acc > 2 * chance)),
                    "frac_above_0.5": float(np.mean(acc > 0.5))})
    elif kind == "reconstruction":
        mse = np.array([r["metrics"]["mse"] for r in recs], dtype=np.float64)
        labels = [int(r["config"]["label"]) for r in recs]
        rep.update({"mse": _summary(mse), "frac_psnr_above_30": float(np.mean(values > 30)),
                    "labels": {str(c): labels.count(c) for c in sorted(set(labels))}})
    rep["knobs"] = _knobs(recs, values)
    secs = [r["metrics"]["train_seconds"] for r in recs if "train_seconds" in r["metrics"]]
    if secs:
        rep["train_seconds"] = {"mean": float(np.mean(secs)), "total": float(np.sum(secs)),
                                "members": len(secs)}
    return rep


def _knobs(recs: list[dict[str, Any]], values: np.ndarray) -> dict[str, list[dict[str, Any]]]:
    """Per sampled configuration key (one that takes more than one value), the metric's
    ``n`` / mean / min / max per value, over the finite members."""
    keys = sorted({k for r in recs for k in r["config"]} - _NOT_KNOBS)
    out: dict[str, list[dict[str, Any]]] = {}
    for k in keys:
        col = [r["config"].get(k) for r in recs]
        distinct = sorted({json_key(v) for v in col})
        if len(distinct) < 2:
            continue
        rows = []
        for v in distinct:
            sel = np.array([json_key(c) == v for c in col]) & np.isfinite(values)
            xs = values[sel]
            n_all = sum(json_key(c) == v for c in col)
            rows.append({"value": v, "n": n_all,
                         "mean": float(xs.mean()) if len(xs) else None,
                         "min": float(xs.min()) if len(xs) else None,
                         "max": float(xs.max()) if len(xs) else None})
        out[k] = rows
    return out


def json_key(v: Any) -> Any:
    """A configuration value as a sortable, JSON-ready key (``None`` and bools as strings, so
    mixed columns sort)."""
    if v is None or isinstance(v, bool):
        return str(v)
    return v if isinstance(v, int | float) else str(v)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def health_markdown(rep: dict[str, Any]) -> str:
    """:func:`health_report` as Markdown (headline line, quantile table, per-knob spread)."""
    m, s = rep["metric"], rep["summary"]
    lines = [f"# Zoo health: {rep['preset']} ({rep['members']} members)", ""]
    if rep["kind"] == "accuracy":
        lines.append(f"{m}: median {s['q50']:.3f}, {rep['frac_above_chance']:.0%} above chance "
                     f"({rep['chance']:.2f} + {CHANCE_MARGIN}), "
                     f"{rep['frac_above_2x_chance']:.0%} above 2x chance, "
                     f"{rep['frac_above_0.5']:.0%} above 0.5; {len(rep['diverged'])} diverged.")
    elif rep["kind"] == "reconstruction":
        lines.append(f"PSNR median {s['q50']:.1f} dB (min {s['q00']:.1f}), "
                     f"{rep['frac_psnr_above_30']:.0%} above 30 dB; MSE median "
                     f"{rep['mse']['q50']:.2e}; {len(rep['diverged'])} diverged; members per "
                     f"label {rep['labels']}.")
    else:
        lines.append(f"{m}: median {s['q50']:.3f} (range {s['q00']:.3f} .. {s['q100']:.3f}); "
                     f"{len(rep['diverged'])} diverged.")
    if "train_seconds" in rep:
        t = rep["train_seconds"]
        lines.append(f"Build: {t['mean']:.3f} s per member, {t['total']:.0f} s in all "
                     f"({t['members']} members timed).")
    cols = ["mean", "std", "q00", "q10", "q25", "q50", "q75", "q90", "q100"]
    lines += ["", "| metric | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|",
              f"| {m} | " + " | ".join(_fmt(s[c]) for c in cols) + " |"]
    if rep["kind"] == "reconstruction":
        lines.append("| mse | " + " | ".join(_fmt(rep["mse"][c]) for c in cols) + " |")
    if rep["diverged"]:
        lines += ["", f"Diverged members: {rep['diverged']}"]
    if rep["knobs"]:
        lines += ["", f"## {m} per hyperparameter value", "",
                  "| knob | value | n | mean | min | max |", "|---|---|---|---|---|---|"]
        for k, rows in rep["knobs"].items():
            lines += [f"| {k} | {r['value']} | {r['n']} | {_fmt(r['mean'])} | {_fmt(r['min'])} | "
                      f"{_fmt(r['max'])} |" for r in rows]
    return "\n".join(lines) + "\n"


def _figure(rep: dict[str, Any]) -> bytes:
    from graphlab.zoo.analysis import pyplot

    plt = pyplot()
    edges = np.array(rep["histogram"]["edges"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(edges[:-1], rep["histogram"]["counts"], width=np.diff(edges), align="edge",
           edgecolor="k", lw=0.5)
    if rep["kind"] == "accuracy":
        ax.axvline(rep["chance"], color="r", ls="--", lw=1, label="chance")
        ax.axvline(2 * rep["chance"], color="orange", ls=":", lw=1, label="2x chance")
        ax.legend()
    ax.set_xlabel({"accuracy": "test accuracy", "reconstruction": "PSNR (dB)"}.get(
        rep["kind"], rep["metric"]))
    ax.set_ylabel("members")
    ax.set_title(f"{rep['preset']} ({rep['members']} members)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def write_health(zoo: Zoo, out: str | Path | None = None) -> dict[str, Any]:
    """Compute :func:`health_report` and write ``health.json``, ``health.md`` and (when
    matplotlib, the ``plot`` extra, is installed) ``health.png`` into ``out`` (default: the zoo
    folder), atomically. Returns the report."""
    out = Path(out) if out is not None else zoo.path
    out.mkdir(parents=True, exist_ok=True)
    rep = health_report(zoo)
    md = health_markdown(rep)
    try:
        atomic_write_bytes(out / "health.png", _figure(rep))
    except ImportError:
        md += "\n(no health.png: matplotlib is not installed; pip install 'graphlab[plot]')\n"
    atomic_write_json(out / "health.json", rep, indent=1)
    atomic_write_text(out / "health.md", md)
    return rep
