"""Zoo health reports: the numbers on hand-made zoos, the files `zoo build` writes, and the
INR variant."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from graphlab.zoo import load_zoo
from graphlab.zoo.architectures import make_model
from graphlab.zoo.health import CHANCE_MARGIN, health_markdown, health_report, write_health
from graphlab.zoo.store import write_member


def _fake_zoo(root: Path, accs: list[float | None], lrs: list[float]) -> Path:
    """A zoo folder whose members have the given test accuracies (None: diverged)."""
    (root / "members").mkdir(parents=True)
    (root / "zoo.json").write_text(json.dumps({"preset": "digits-mlp", "size": len(accs),
                                               "seed": 0, "version": 2}))
    for i, (acc, lr) in enumerate(zip(accs, lrs)):
        cfg = {"arch": "mlp", "width": 4, "depth": 1, "act": "relu", "lr": lr, "seed": i}
        curve = [{"train_loss": None if acc is None else 1.0, "test_acc": acc}]
        write_member(root, i, make_model(cfg), {"config": cfg, "curve": curve,
                                                "metrics": {"test_acc": acc,
                                                            "train_seconds": 0.5}})
    return root


def test_report_numbers(tmp_path: Path):
    accs = [0.1, 0.12, 0.2, 0.5, 0.9, 0.95, None, 0.8]
    lrs = [0.01, 0.01, 0.01, 0.1, 0.1, 0.1, 0.1, 0.1]
    rep = health_report(load_zoo(_fake_zoo(tmp_path / "z", accs, lrs)))
    assert rep["members"] == 8 and rep["metric"] == "test_acc" and rep["chance"] == 0.1
    assert rep["diverged"] == [6]
    # diverged members stay in the denominator; 0.12 is within the chance margin
    assert rep["frac_above_chance"] == pytest.approx(5 / 8)
    assert 0.1 + CHANCE_MARGIN > 0.12
    assert rep["frac_above_2x_chance"] == pytest.approx(4 / 8)
    assert rep["frac_above_0.5"] == pytest.approx(3 / 8)
    finite = [a for a in accs if a is not None]
    assert rep["summary"]["q50"] == pytest.approx(sorted(finite)[3])
    assert rep["summary"]["q00"] == 0.1 and rep["summary"]["q100"] == 0.95
    assert sum(rep["histogram"]["counts"]) == 7 and len(rep["histogram"]["edges"]) == 21
    by_lr = {r["value"]: r for r in rep["knobs"]["lr"]}
    assert by_lr[0.01]["n"] == 3 and by_lr[0.01]["max"] == 0.2
    assert by_lr[0.1]["n"] == 5 and by_lr[0.1]["mean"] == pytest.approx((0.5 + 0.9 + 0.95 + 0.8) / 4)
    assert "width" not in rep["knobs"] and "seed" not in rep["knobs"]  # constant / identity
    assert rep["train_seconds"] == {"mean": 0.5, "total": 4.0, "members": 8}
    md = health_markdown(rep)
    assert "62% above chance" in md and "Diverged members: [6]" in md and "| lr | 0.01 | 3 |" in md
    json.dumps(rep, allow_nan=False)  # strict JSON


def test_write_health_files_atomic(tmp_path: Path):
    z = load_zoo(_fake_zoo(tmp_path / "z", [0.3, 0.6, 0.9], [0.1, 0.1, 0.3]))
    rep = write_health(z)
    assert json.loads((z.path / "health.json").read_text())["members"] == 3
    assert (z.path / "health.md").read_text() == health_markdown(rep)
    assert (z.path / "health.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in z.path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_empty_zoo_is_a_clear_error(tmp_path: Path):
    z = load_zoo(_fake_zoo(tmp_path / "z", [], []))
    with pytest.raises(ValueError, match="no finished members"):
        health_report(z)


def test_build_cli_prints_and_saves_health(tmp_path: Path, capsys: pytest.CaptureFixture):
    from graphlab.cli import main

    out = tmp_path / "inr"
    assert main(["zoo", "build", "--preset", "digits-inr", "--size", "6", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "# Zoo health: digits-inr (6 members)" in text and "PSNR median" in text
    rep = json.loads((out / "health.json").read_text())
    assert rep["metric"] == "psnr" and rep["frac_psnr_above_30"] == 1.0
    assert sum(rep["labels"].values()) == 6 and math.isfinite(rep["mse"]["q50"])
    assert {"health.md", "health.png"} <= {p.name for p in out.iterdir()}
    assert main(["zoo", "health", "--zoo", str(out)]) == 0
    assert "PSNR median" in capsys.readouterr().out
