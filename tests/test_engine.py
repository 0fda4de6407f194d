"""Tests for :func:`graphlab.engine.fit`: selection, hooks, checkpoint/resume, corrupt files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graphlab.engine import CHECKPOINT_NAME, FitResult, fit, is_better
from graphlab.runfolder import CorruptFileError, atomic_torch_save


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 3, generator=gen)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1


def _setup(seed: int = 0, scheduler: bool = False):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5) if scheduler else None
    return model, opt, sched


def _hooks(x, y, gen: torch.Generator | None = None):
    def batches(epoch):
        # drawn from the checkpointed generator: a resume must restore its state
        order = torch.randperm(len(x), generator=gen)
        return [order[i:i + 16] for i in range(0, len(x), 16)]

    def step(model, idx):
        return F.mse_loss(model(x[idx]), y[idx])

    def evaluate(model):
        mse = F.mse_loss(model(x), y).item()
        return {"valid": mse, "test": mse * 2}

    return batches, step, evaluate


def _fit(run_dir, epochs, seed=0, **kw) -> tuple[nn.Module, FitResult]:
    x, y = _data()
    model, opt, sched = _setup(seed, scheduler=True)
    gen = torch.Generator().manual_seed(7)
    batches, step, evaluate = _hooks(x, y, gen)
    res = fit(model, opt, train_step=step, train_batches=batches, epochs=epochs,
              evaluate=evaluate, select=("valid", "min"), run_dir=run_dir, scheduler=sched,
              generator=gen, progress=False, **kw)
    return model, res


def test_fit_trains_and_selects_best_epoch():
    model, res = _fit(None, 8)
    assert res.epochs == 8 and [h["epoch"] for h in res.history] == list(range(8))
    valid = [h["valid"] for h in res.history]
    assert valid[-1] < valid[0]  # it learns
    assert res.best_epoch == min(range(8), key=lambda e: (valid[e], e))
    assert res.best == {"valid": valid[res.best_epoch], "test": 2 * valid[res.best_epoch]}
    assert all(h["loss"] > 0 for h in res.history) and res.resumed_from == -1
    assert res.seconds_per_epoch > 0


def test_resume_equals_uninterrupted_run(tmp_path: Path):
    torch.manual_seed(123)
    ref_model, ref = _fit(None, 6)
    _fit(tmp_path, 3)  # "killed" after 3 epochs: the checkpoint holds epochs 0..2
    torch.manual_seed(999)  # the caller's RNG state differs; the checkpoint restores it
    model, res = _fit(tmp_path, 6)
    assert res.resumed_from == 2 and res.epochs == 6
    assert [h["loss"] for h in res.history] == pytest.approx([h["loss"] for h in ref.history],
                                                             rel=1e-6)
    assert res.best_epoch == ref.best_epoch
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)
    # a finished run resumes to itself without training
    again_model, again = _fit(tmp_path, 6)
    assert again.history == res.history and again.resumed_from == 5
    assert (tmp_path / (CHECKPOINT_NAME + ".sha256")).exists()


def test_checkpoint_with_more_epochs_than_asked(tmp_path: Path):
    _fit(tmp_path, 3)
    with pytest.raises(ValueError, match="holds 3 epochs, more than the 2"):
        _fit(tmp_path, 2)


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path: Path):
    _fit(tmp_path, 2)
    x, y = _data()
    model = nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters())
    _, step, evaluate = _hooks(x, y)
    with pytest.raises(ValueError, match="written for another model") as info:
        fit(model, opt, train_step=step, train_batches=[torch.arange(64)], epochs=3,
            evaluate=evaluate, select=("valid", "min"), run_dir=tmp_path, progress=False)
    assert str(tmp_path / CHECKPOINT_NAME) in str(info.value)


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncate", "flip", "foreign"])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path, damage: str):
    _fit(tmp_path, 2)
    ckpt = tmp_path / CHECKPOINT_NAME
    data = ckpt.read_bytes()
    if damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "garbage":
        ckpt.write_bytes(b"\x80\x04garbage" * 50)
    elif damage == "truncate":
        ckpt.write_bytes(data[: len(data) // 3])
    elif damage == "flip":
        flipped = bytearray(data)
        for i in range(64):
            flipped[len(data) // 2 + i] ^= 0xFF
        ckpt.write_bytes(bytes(flipped))
    else:  # a valid torch file that is not an engine checkpoint
        (tmp_path / (CHECKPOINT_NAME + ".sha256")).unlink()
        atomic_torch_save({"model": {}}, ckpt)
    with pytest.raises(CorruptFileError) as info:
        _fit(tmp_path, 4)
    msg = str(info.value)
    assert str(ckpt) in msg and "--overwrite" in msg and "delete" in msg
    assert "weights_only=False" not in msg


def test_restore_best_and_select_none():
    x, y = _data()
    model, opt, _ = _setup()
    batches, step, _ = _hooks(x, y)
    scores = iter([3.0, 1.0, 2.0, 5.0])
    seen = []
    res = fit(model, opt, train_step=step, train_batches=batches, epochs=4,
              evaluate=lambda m: {"valid": next(scores)}, select=("valid", "max"),
              restore_best=True, progress=False,
              on_epoch_end=lambda e, rec: seen.append((e, rec["valid"])))
    assert res.best_epoch == 3 and seen == [(0, 3.0), (1, 1.0), (2, 2.0), (3, 5.0)]

    model, opt, _ = _setup()
    weights = []
    res = fit(model, opt, train_step=step, train_batches=batches, epochs=3,
              evaluate=lambda m: {"valid": [2.0, 9.0, 1.0][len(weights)]},
              select=("valid", "max"), restore_best=True, progress=False,
              on_epoch_end=lambda e, rec: weights.append(
                  [p.detach().clone() for p in model.parameters()]))
    assert res.best_epoch == 1
    for p, w in zip(model.parameters(), weights[1]):
        assert torch.equal(p, w)  # the best epoch's weights, not the last ones

    model, opt, _ = _setup()
    res = fit(model, opt, train_step=step, train_batches=batches, epochs=2, evaluate=None,
              select=None, progress=False)
    assert res.best_epoch == 1 and res.best == {}


def test_iterable_batches_and_empty_epoch():
    x, y = _data()
    model, opt, _ = _setup()
    _, step, evaluate = _hooks(x, y)
    fixed = [torch.arange(0, 32), torch.arange(32, 64)]
    res = fit(model, opt, train_step=step, train_batches=fixed, epochs=2, evaluate=evaluate,
              select=("valid", "min"), progress=False)
    assert all(h["loss"] is not None for h in res.history)
    res = fit(model, opt, train_step=step, train_batches=lambda e: [], epochs=1,
              evaluate=evaluate, select=("valid", "min"), progress=False)
    assert res.history[0]["loss"] is None


def test_scheduler_per_step_and_plateau():
    x, y = _data()
    model, opt, _ = _setup()
    batches, step, evaluate = _hooks(x, y)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    fit(model, opt, train_step=step, train_batches=batches, epochs=1, evaluate=evaluate,
        select=("valid", "min"), scheduler=sched, scheduler_interval="step", progress=False)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5 ** 4)  # 4 batches

    model, opt, _ = _setup()
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.1)
    fit(model, opt, train_step=step, train_batches=batches, epochs=3,
        evaluate=lambda m: {"valid": 1.0}, select=("valid", "min"), scheduler=plateau,
        progress=False)
    assert opt.param_groups[0]["lr"] < 1e-2  # a constant score is a plateau


def test_argument_validation():
    x, y = _data()
    model, opt, _ = _setup()
    batches, step, evaluate = _hooks(x, y)
    for epochs in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="epochs must be a positive integer"):
            fit(model, opt, train_step=step, train_batches=batches, epochs=epochs,
                evaluate=evaluate)
    with pytest.raises(ValueError, match="needs an evaluate hook"):
        fit(model, opt, train_step=step, train_batches=batches, epochs=1)
    with pytest.raises(ValueError, match="select must be"):
        fit(model, opt, train_step=step, train_batches=batches, epochs=1, evaluate=evaluate,
            select=("valid", "best"))
    with pytest.raises(ValueError, match="without the selection key 'acc'"):
        fit(model, opt, train_step=step, train_batches=batches, epochs=1, evaluate=evaluate,
            select=("acc", "max"), progress=False)


def test_is_better_nan_semantics():
    assert is_better(1.0, None, True) and is_better(1.0, math.nan, False)
    assert not is_better(math.nan, None, True) and not is_better(None, 1.0, True)
    assert is_better(2.0, 1.0, True) and not is_better(2.0, 1.0, False)
    assert not is_better(1.0, 1.0, True)  # ties keep the earlier epoch


def _scripted_fit(scores: list[dict[str, float]], run_dir=None, epochs=None, **kw) -> FitResult:
    """fit() on a tiny model whose evaluate hook replays ``scores`` epoch by epoch."""
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    seen = iter(scores[len(_read_history(run_dir)):] if run_dir is not None else scores)

    def step(m, _):
        return m(torch.ones(1, 1)).sum()

    return fit(model, opt, train_step=step, train_batches=[0], epochs=epochs or len(scores),
               evaluate=lambda m: next(seen), run_dir=run_dir, progress=False, **kw)


def _read_history(run_dir) -> list:
    if run_dir is None or not (Path(run_dir) / CHECKPOINT_NAME).exists():
        return []
    from graphlab.runfolder import safe_torch_load
    return safe_torch_load(Path(run_dir) / CHECKPOINT_NAME)["state"]["history"]


def test_lexicographic_selection_breaks_ties_by_the_second_criterion():
    scores = [{"acc": 0.5, "loss": 1.0}, {"acc": 0.8, "loss": 0.9}, {"acc": 0.8, "loss": 0.4},
              {"acc": 0.8, "loss": 0.6}, {"acc": 0.7, "loss": 0.1}]
    res = _scripted_fit(scores, select=[("acc", "max"), ("loss", "min")])
    assert res.best_epoch == 2 and res.best == scores[2]
    # a single criterion keeps the first of the tied epochs
    assert _scripted_fit(scores, select=("acc", "max")).best_epoch == 1
    # NaN in the first criterion never wins, even with a perfect tie-breaker
    nan_first = [{"acc": 0.5, "loss": 1.0}, {"acc": math.nan, "loss": 0.0}]
    assert _scripted_fit(nan_first, select=[("acc", "max"), ("loss", "min")]).best_epoch == 0


def test_patience_stops_early_and_resume_keeps_the_decision(tmp_path: Path):
    scores = [{"valid": v} for v in [0.1, 0.5, 0.4, 0.5, 0.3, 0.9, 0.95]]
    res = _scripted_fit(scores, select=("valid", "max"), patience=3)
    # best at epoch 1; epochs 2, 3, 4 do not improve (a tie is no improvement): stop after 4
    assert res.stopped_early and res.epochs == 5 and res.best_epoch == 1
    assert not _scripted_fit(scores, select=("valid", "max"), patience=10).stopped_early
    # checkpointed: the resumed run trains no further and reports the same
    first = _scripted_fit(scores, run_dir=tmp_path, select=("valid", "max"), patience=3)
    again = _scripted_fit(scores, run_dir=tmp_path, select=("valid", "max"), patience=3)
    assert again.stopped_early and again.history == first.history and again.resumed_from == 4


def test_patience_and_select_validation():
    scores = [{"valid": 0.1}]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="patience must be a positive integer"):
            _scripted_fit(scores, patience=bad)
    with pytest.raises(ValueError, match="needs a selection criterion"):
        _scripted_fit(scores, select=None, patience=2)
    for bad in ([], [("valid", "up")], [("valid",)], ("valid", "max", "x")):
        with pytest.raises(ValueError, match="select must"):
            _scripted_fit(scores, select=bad)
    with pytest.raises(ValueError, match="without the selection key 'loss'"):
        _scripted_fit(scores, select=[("valid", "max"), ("loss", "min")])


def test_min_epochs_delays_early_stopping_and_keeps_the_best_epoch(tmp_path: Path):
    scores = [{"valid": v} for v in [0.1, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]]
    # patience 2 alone stops after epoch 3 (epochs 2, 3 do not improve on epoch 1)
    assert _scripted_fit(scores, select=("valid", "max"), patience=2).epochs == 4
    # min_epochs 7: no stop before 7 epochs were trained, then the first check stops it
    res = _scripted_fit(scores, select=("valid", "max"), patience=2, min_epochs=7)
    assert res.stopped_early and res.epochs == 7 and res.best_epoch == 1
    # patience alone would stop after epoch 3; min_epochs 5 lets the improvement at epoch 4
    # in, which restarts the patience count as usual
    late = [{"valid": v} for v in [0.1, 0.9, 0.5, 0.5, 0.95, 0.5, 0.5, 0.5, 0.5, 0.5]]
    res = _scripted_fit(late, select=("valid", "max"), patience=2, min_epochs=5)
    assert res.best_epoch == 4 and res.epochs == 7
    # min_epochs beyond the budget: the run ends at epochs, not stopped early
    res = _scripted_fit(scores, select=("valid", "max"), patience=2, min_epochs=50)
    assert not res.stopped_early and res.epochs == len(scores)
    # without patience min_epochs changes nothing
    assert _scripted_fit(scores, select=("valid", "max"), min_epochs=3).epochs == len(scores)
    # a resumed run continues the same rule: interrupted after 5 epochs, stops at 7
    _scripted_fit(scores, run_dir=tmp_path, epochs=5, select=("valid", "max"), patience=2,
                  min_epochs=7)
    again = _scripted_fit(scores, run_dir=tmp_path, select=("valid", "max"), patience=2,
                          min_epochs=7)
    assert again.resumed_from == 4 and again.stopped_early and again.epochs == 7


def test_min_epochs_validation():
    for bad in (0, -3, 2.5, True, "10"):
        with pytest.raises(ValueError, match="min_epochs must be a positive integer or None"):
            _scripted_fit([{"valid": 0.1}], select=("valid", "max"), patience=2, min_epochs=bad)
