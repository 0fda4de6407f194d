"""Tests for :mod:`graphlab.runfolder`: atomic writes, checked loads, run folders, results schema."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from graphlab.runfolder import (
    RESULTS_SCHEMA,
    CorruptFileError,
    RunFolder,
    RunFolderError,
    atomic_save_safetensors,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    clean_orphans,
    results_record,
    safe_torch_load,
    write_results,
)


def test_atomic_writes_round_trip(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "a.txt", "héllo")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.txt"]  # no temp left


def test_atomic_write_json_is_strict(tmp_path: Path) -> None:
    obj = {"nan": float("nan"), "inf": -math.inf, "np": np.float32(0.5), "npi": np.int64(3),
           "t": torch.tensor(2.0), "arr": np.arange(3), "nested": [float("nan"), 1.0],
           "path": Path("x/y")}
    atomic_write_json(tmp_path / "r.json", obj)
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert back == {"nan": None, "inf": None, "np": 0.5, "npi": 3, "t": 2.0, "arr": [0, 1, 2],
                    "nested": [None, 1.0], "path": "x/y"}


def test_failed_write_leaves_no_temp_and_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.pt"
    atomic_torch_save({"a": torch.ones(2)}, target)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(Exception, match="boom"):
        atomic_torch_save({"bad": Boom()}, target)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    assert torch.equal(safe_torch_load(target)["a"], torch.ones(2))


def test_temp_files_are_unique(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append(Path(src).name)
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write_text(tmp_path / "x.json", "1")
    atomic_write_text(tmp_path / "x.json", "2")
    assert len(set(seen)) == 2 and all(s.startswith(".x.json.") and s.endswith(".tmp")
                                       for s in seen)


def test_clean_orphans(tmp_path: Path) -> None:
    (tmp_path / "run_0").mkdir()
    orphans = [tmp_path / ".results.json.abc.tmp", tmp_path / "run_0" / ".checkpoint.pt.x.tmp"]
    for p in orphans:
        p.write_bytes(b"partial")
    keep = tmp_path / "results.json"
    keep.write_text("{}")
    assert sorted(clean_orphans(tmp_path)) == sorted(orphans)
    assert keep.exists() and not any(p.exists() for p in orphans)


def test_safetensors_atomic(tmp_path: Path) -> None:
    from safetensors import safe_open

    atomic_save_safetensors({"w": torch.arange(6.0).view(2, 3).t()}, tmp_path / "m.safetensors",
                            metadata={"epochs": 3})
    with safe_open(tmp_path / "m.safetensors", "pt") as f:
        assert f.metadata() == {"epochs": "3"}
        assert torch.equal(f.get_tensor("w"), torch.arange(6.0).view(2, 3).t())


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, "truncate"])
def test_safe_torch_load_corrupt(tmp_path: Path, content: bytes | str) -> None:
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save({"w": torch.randn(100)}, path)
    if content == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(CorruptFileError, match=str(path)) as info:
        safe_torch_load(path)
    assert "weights_only=False" not in str(info.value)
    assert "delete" in str(info.value)


def test_safe_torch_load_refuses_unsafe_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"obj": Path("x")}, path)  # a non-allow-listed class
    with pytest.raises(CorruptFileError, match="safe") as info:
        safe_torch_load(path)
    assert "weights_only=False" not in str(info.value)


def test_checksum_detects_flipped_bytes(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save({"w": torch.randn(1000)}, path, checksum=True)
    assert (tmp_path / "checkpoint.pt.sha256").exists()
    safe_torch_load(path)
    data = bytearray(path.read_bytes())
    for i in range(0, 64):
        data[len(data) // 2 + i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="SHA-256"):
        safe_torch_load(path)


def test_checksum_survives_kill_between_renames(tmp_path: Path) -> None:
    """The sidecar lists old and new digests while the file is replaced: both verify."""
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save({"w": torch.zeros(3)}, path, checksum=True)
    old = path.read_bytes()
    atomic_torch_save({"w": torch.ones(3)}, path, checksum=True)
    new = path.read_bytes()
    # simulate a kill after the sidecar (with both digests) but before the file's rename
    import hashlib

    both = [hashlib.sha256(b).hexdigest() for b in (new, old)]
    (tmp_path / "checkpoint.pt.sha256").write_text("\n".join(both) + "\n")
    path.write_bytes(old)
    assert torch.equal(safe_torch_load(path)["w"], torch.zeros(3))


def test_run_folder_records_and_refuses_changed_config(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with RunFolder(out, {"model": "gin", "epochs": 10, "kw": {"h": 1}}) as f:
        assert not f.resumed and f.locked
        (out / "results.json").write_text("{}")
    assert json.loads((out / "config.json").read_text())["model"] == "gin"
    with RunFolder(out, {"model": "gin", "epochs": 10, "kw": {"h": 1}}) as f:
        assert f.resumed
    with pytest.raises(RunFolderError) as info:
        with RunFolder(out, {"model": "gcn", "epochs": 10, "kw": {"h": 2}}):
            pass
    msg = str(info.value)
    assert "model: 'gin' -> 'gcn'" in msg and "kw.h" in msg and "--overwrite" in msg
    assert "epochs" not in msg
    with RunFolder(out, {"model": "gcn", "epochs": 10, "kw": {"h": 2}}, overwrite=True):
        assert not (out / "results.json").exists()
    assert json.loads((out / "config.json").read_text())["model"] == "gcn"


def test_run_folder_ignored_keys_update_config(tmp_path: Path) -> None:
    with RunFolder(tmp_path, {"a": 1, "progress": True}, ignore=["progress"]):
        pass
    with RunFolder(tmp_path, {"a": 1, "progress": False}, ignore=["progress"]) as f:
        assert f.resumed
    assert json.loads((tmp_path / "config.json").read_text())["progress"] is False


def test_run_folder_refuses_unrecorded_nonempty_folder(tmp_path: Path) -> None:
    (tmp_path / "something.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="records no configuration"):
        with RunFolder(tmp_path, {"a": 1}):
            pass
    # --overwrite does not wipe a folder that is not a run folder (e.g. --out ~)
    with pytest.raises(RunFolderError, match="not a graphlab run folder"):
        with RunFolder(tmp_path, {"a": 1}, overwrite=True):
            pass
    assert (tmp_path / "something.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["something.txt"]  # no .lock left


def test_run_folder_lock_between_processes(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from graphlab.runfolder import RunFolder
        with RunFolder({str(tmp_path)!r}, {{"a": 1}}):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=rf"in use by another process \(pid {proc.pid}\)"):
            with RunFolder(tmp_path, {"a": 1}):
                pass
    finally:
        proc.communicate("\n", timeout=30)
    with RunFolder(tmp_path, {"a": 1}):  # released when the holder exits
        pass


def test_run_folder_cleans_orphans_and_reports_unwritable(tmp_path: Path) -> None:
    with RunFolder(tmp_path / "r", {"a": 1}):
        pass
    orphan = tmp_path / "r" / ".checkpoint.pt.123.tmp"
    orphan.write_bytes(b"x")
    with RunFolder(tmp_path / "r", {"a": 1}):
        assert not orphan.exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunFolderError, match="cannot use"):
        with RunFolder(blocker / "sub", {"a": 1}):
            pass


def test_results_record_schema(tmp_path: Path) -> None:
    rec = results_record(task="train", dataset="MUTAG", model="gin", metric="accuracy",
                         config={"lr": 0.01}, runs=[{"test": float("nan")}],
                         summary={"test_mean": np.float64(0.5)}, timings={"total": 1.0})
    assert rec["schema"] == RESULTS_SCHEMA
    assert set(rec) >= {"commit", "date", "machine", "versions", "config", "runs", "summary"}
    assert rec["versions"]["torch"] and rec["machine"]["cpu_count"] >= 1
    assert rec["runs"] == [{"test": None}] and rec["summary"]["test_mean"] == 0.5
    write_results(tmp_path / "results.json", rec)
    assert json.loads((tmp_path / "results.json").read_text())["task"] == "train"
    with pytest.raises(ValueError, match="schema"):
        write_results(tmp_path / "x.json", {"a": 1})


def test_checksummed_file_always_verifies_after_interrupted_saves(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    """Whatever rename a kill interrupts, over any sequence of saves, the file on disk verifies
    and holds one of the saved values (a kill is simulated by a failing ``os.replace``)."""
    import random

    path = tmp_path / "checkpoint.pt"
    real = os.replace
    rng = random.Random(0)
    on_disk = None
    for i in range(40):
        fail_at = rng.choice([None, 1, 2, 3])  # the sidecar, the file or the final sidecar
        calls = {"n": 0}

        def replace(src, dst, fail_at=fail_at, calls=calls):
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise KeyboardInterrupt("killed")
            real(src, dst)

        monkeypatch.setattr(os, "replace", replace)
        try:
            atomic_torch_save({"i": torch.tensor(i)}, path, checksum=True)
        except KeyboardInterrupt:
            pass
        monkeypatch.setattr(os, "replace", real)
        if fail_at in (None, 3):  # the file itself was replaced
            on_disk = i
        if on_disk is not None:
            assert int(safe_torch_load(path)["i"]) == on_disk
    assert on_disk is not None and not list(tmp_path.glob(".*.tmp"))
