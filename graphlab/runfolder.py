"""Run folders, atomic file writes and the results schema: the one place graphlab writes files.

Every file graphlab writes for later reading goes through this module, so a reader never sees a
half-written file and no two writers share a temporary file:

* **Atomic writes.** :func:`atomic_write_bytes`, :func:`atomic_write_text`,
  :func:`atomic_write_json`, :func:`atomic_torch_save` and :func:`atomic_save_safetensors` write a
  *unique* temporary file next to the target (``.<name>.XXXX.tmp``, from
  :func:`tempfile.mkstemp`), ``fsync`` it and :func:`os.replace` it onto the target; on any
  failure (including ``KeyboardInterrupt``) the temporary file is removed. A process killed
  mid-write leaves at most an orphan ``.*.tmp`` file, which :func:`clean_orphans` (and every
  :class:`RunFolder` on entry) removes. JSON is strict: non-finite floats are written as
  ``null`` (never the ``NaN`` token, which is not JSON), numpy and tensor scalars become numbers.
* **Checked loads.** :func:`safe_torch_load` reads with ``torch.load(weights_only=True)`` and turns
  every way a file can be broken (empty, truncated, garbage, objects a safe load refuses, a
  SHA-256 mismatch) into one :class:`CorruptFileError` that names the file and what to do.
  ``atomic_torch_save(..., checksum=True)`` records the SHA-256 beside the file
  (``<name>.sha256``) so that flipped bytes, which a zip-based torch file often loads silently,
  are detected too. The sidecar is written *before* the file is replaced and lists both the new
  and the previous digest, so a kill between the two renames never makes a good file look
  corrupt.
* **Run folders.** :class:`RunFolder` is a context manager around an output folder: it takes an
  exclusive lock (``<folder>/.lock``, :func:`fcntl.flock`, non-blocking), records the run's
  configuration in ``config.json`` on first use and refuses a folder that holds a run with another
  configuration, naming the differing keys (``overwrite=True`` wipes the folder first).
* **Results schema.** :func:`results_record` builds the ``graphlab.results/1`` record that every
  results file uses (task, dataset, model, metric, config, runs, summary, timings, plus the
  commit, date, machine and versions that produced it); :func:`write_results` writes it.

Example::

    from graphlab.runfolder import RunFolder, atomic_write_json, results_record, write_results

    with RunFolder("runs/gin-mutag", config={"model": "gin", "epochs": 10}) as folder:
        ...  # train, checkpoint into folder.path
        write_results(folder.path / "results.json", results_record(
            task="train", dataset="MUTAG", model="gin", metric="accuracy",
            config=folder.config, runs=runs, summary={"test_mean": 0.9}, timings={}))

This module imports neither torch nor numpy at import time (the CLI imports its error types).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import fcntl
import hashlib
import io
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_torch_save",
    "atomic_save_safetensors", "clean_orphans", "to_json", "CorruptFileError", "safe_torch_load",
    "verify_checksum", "read_json", "RunFolderError", "RunFolder", "RESULTS_SCHEMA", "results_record",
    "write_results",
]

#: identifier of the results schema written by :func:`results_record`
RESULTS_SCHEMA = "graphlab.results/1"

_TMP_SUFFIX = ".tmp"
_LOCK_NAME = ".lock"
_CONFIG_NAME = "config.json"


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


# --------------------------------------------------------------------------- atomic writes
def _fsync_dir(folder: Path) -> None:
    # makes the rename itself durable; not every filesystem allows opening a directory
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=_TMP_SUFFIX)
    try:
        # mkstemp creates 0600; give the file the mode an ordinary open() would
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (unique temporary file, ``fsync``, rename)."""
    return _atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any) -> Any:
    """``obj`` as plain JSON values: non-finite floats become ``None``; numpy/tensor scalars and
    arrays, paths, sets, tuples and dataclasses are converted; other objects become ``str(obj)``.
    """
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((to_json(v) for v in obj), key=repr)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_json(dataclasses.asdict(obj))
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    # numpy / torch without importing them: scalars have .item(), arrays and tensors .tolist()
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return to_json(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return to_json(obj.item())
    return str(obj)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON (``allow_nan=False``; NaN/inf become ``null``) atomically."""
    text = json.dumps(to_json(obj), indent=indent, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_digests(sidecar: Path) -> list[str]:
    try:
        return [line.split()[0] for line in sidecar.read_text().splitlines() if line.strip()]
    except (OSError, IndexError, UnicodeDecodeError):
        return []


def atomic_torch_save(obj: Any, path: str | os.PathLike, *, checksum: bool = False) -> Path:
    """``torch.save(obj, path)`` atomically.

    With ``checksum=True`` the SHA-256 of the file is recorded in ``<path>.sha256`` and checked by
    :func:`safe_torch_load`. The sidecar is replaced *before* the file and lists the new and the
    previous digest, so whichever of the two files a kill leaves in place still verifies.
    """
    import torch

    path = Path(path)
    if not checksum:
        return _atomic_write(path, lambda fh: torch.save(obj, fh))
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    sidecar = _checksum_path(path)
    previous = None
    if path.exists():
        # a one-line sidecar is written only once its file is in place (or before the first
        # file exists), so it names the current file; otherwise hash the file itself
        known = _read_digests(sidecar) if sidecar.exists() else []
        previous = known[0] if len(known) == 1 else _sha256_file(path)
    lines = [f"{digest}  {path.name}"]
    if previous is not None and previous != digest:
        lines.append(f"{previous}  {path.name}")
    atomic_write_text(sidecar, "\n".join(lines) + "\n")
    atomic_write_bytes(path, data)
    atomic_write_text(sidecar, lines[0] + "\n")
    return path


def atomic_save_safetensors(tensors: Mapping[str, Any], path: str | os.PathLike,
                            metadata: Mapping[str, Any] | None = None) -> Path:
    """Save a ``{name: tensor}`` dict in the safetensors format, atomically.

    Tensors are detached and made contiguous; ``metadata`` values are stored as strings (the
    format allows nothing else).
    """
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    meta = None if metadata is None else {str(k): str(v) for k, v in metadata.items()}
    return atomic_write_bytes(path, save(tensors, metadata=meta))


def clean_orphans(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Delete the ``.*.tmp`` files that interrupted atomic writes left in ``folder``.

    Only call it on a folder no other process is writing to (:class:`RunFolder` holds its lock
    when it does). Returns the removed paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = "**/.*" + _TMP_SUFFIX if recursive else ".*" + _TMP_SUFFIX
    removed = []
    for tmp in folder.glob(pattern):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


# --------------------------------------------------------------------------- checked loads
class CorruptFileError(ValueError):
    """A file graphlab wrote cannot be read back (empty, truncated, garbage, unsafe, tampered)."""


def read_json(path: str | os.PathLike, hint: str) -> Any:
    """The JSON in ``path``; an unreadable or malformed file is a :class:`CorruptFileError`
    saying ``"<path> is unreadable; <hint>"``."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        raise CorruptFileError(f"{path} is unreadable; {hint}") from None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _corrupt(path: Path, reason: str, hint: str | None) -> CorruptFileError:
    hint = hint or f"delete {path} (or start the run over with --overwrite)"
    return CorruptFileError(f"{path} is unreadable: {reason}; {hint}")


def verify_checksum(path: str | os.PathLike, hint: str | None = None) -> bool:
    """Check ``path`` against its ``<path>.sha256`` sidecar, if there is one.

    Returns ``False`` when there is no sidecar, ``True`` when the digest matches, and raises
    :class:`CorruptFileError` when it does not.
    """
    path = Path(path)
    sidecar = _checksum_path(path)
    if not sidecar.exists():
        return False
    digests = _read_digests(sidecar)
    if _sha256_file(path) not in digests:
        raise _corrupt(path, f"its SHA-256 does not match {sidecar.name} (the bytes changed "
                       "after it was written)", hint)
    return True


def safe_torch_load(path: str | os.PathLike, map_location: Any = None, *,
                    hint: str | None = None) -> Any:
    """``torch.load(path, weights_only=True)`` with errors a person can act on.

    The file's SHA-256 is checked first when a ``<path>.sha256`` sidecar exists
    (:func:`atomic_torch_save` with ``checksum=True``). An empty, truncated, garbage or tampered
    file, or one holding objects a safe load refuses, raises :class:`CorruptFileError` naming the
    path and what to do (``hint`` replaces the default advice). A missing file raises
    :class:`FileNotFoundError`. Nothing is ever unpickled beyond what ``weights_only`` allows.
    """
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.stat().st_size == 0:
        raise _corrupt(path, "the file is empty (an interrupted write?)", hint)
    verify_checksum(path, hint)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        if "Weights only load failed" in first or "weights_only" in str(exc):
            # torch's text recommends weights_only=False, which would run the file's code
            reason = "it holds objects that a safe (weights-only) load refuses"
        else:
            reason = f"not a valid torch file ({first[:120]})"
        raise _corrupt(path, reason, hint) from None
    except (EOFError, RuntimeError, ValueError, zipfile.BadZipFile, OSError, KeyError,
            AttributeError, IndexError, TypeError, UnicodeDecodeError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise _corrupt(path, f"truncated or not a torch file ({type(exc).__name__}: {first})",
                       hint) from None


# --------------------------------------------------------------------------- run folders
class RunFolderError(ValueError):
    """A run folder cannot be used as asked (locked, other configuration, not writable)."""


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def _config_diff(old: dict, new: dict, ignore: Iterable[str]) -> list[str]:
    ignore = set(ignore)
    a, b = _flatten(old), _flatten(new)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in ignore or key.split(".")[0] in ignore:
            continue
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            diffs.append(f"{key}: {a.get(key, '<unset>')!r} -> {b.get(key, '<unset>')!r}")
    return diffs


class RunFolder:
    """An output folder owned by one run configuration and one process at a time.

    On entry the folder is created, an exclusive non-blocking lock is taken on ``<folder>/.lock``
    (a second process gets :class:`RunFolderError` naming the holder's pid), orphaned temporary
    files of interrupted writes are removed and the configuration is checked: the first use
    writes ``config.json``; a later use with a configuration that differs in any key not listed in
    ``ignore`` raises :class:`RunFolderError` naming the keys. ``overwrite=True`` deletes the
    folder's contents first, but only in a run folder (one with a ``config.json``) or an empty
    one: a folder with other files is refused rather than wiped. The lock is released on exit
    (the ``.lock`` file stays: deleting it would let two processes lock different files).

    Args:
        path: The folder.
        config: The run's configuration (JSON-serialisable after :func:`to_json`).
        overwrite: Start over: delete everything in the folder first.
        ignore: Top-level keys that may change between uses without invalidating the folder's
            contents (e.g. ``progress``); ``config.json`` is updated to the new values.

    Attributes:
        path (Path): The folder.
        config (dict): The configuration, as JSON values.
        resumed (bool): Whether the folder already held this configuration.
    """

    def __init__(self, path: str | os.PathLike, config: Mapping[str, Any],
                 overwrite: bool = False, ignore: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self.config = to_json(dict(config))
        self.overwrite = overwrite
        self.ignore = tuple(ignore)
        self.resumed = False
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({str(self.path)!r})"

    def __enter__(self) -> RunFolder:
        lock = self.path / _LOCK_NAME
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            created = not lock.exists()
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunFolderError(f"cannot use {self.path} as an output folder: "
                                 f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderError(f"{self.path} is in use by another process (pid {holder})") \
                from None
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            if self.overwrite:
                self._wipe()
            clean_orphans(self.path)
            self._check_config()
        except BaseException:
            if created:  # refused (e.g. not a run folder): leave no trace in it
                lock.unlink(missing_ok=True)
            self._release()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._release()

    def _release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _wipe(self) -> None:
        foreign = [c for c in self.path.iterdir() if c.name != _LOCK_NAME]
        if foreign and not (self.path / _CONFIG_NAME).is_file():
            # --overwrite on a folder that is not a run folder (say, --out ~) must not wipe it
            raise RunFolderError(f"{self.path} is not a graphlab run folder (it has no "
                                 f"{_CONFIG_NAME}); refusing to delete its contents: delete "
                                 "them yourself or choose another output folder")
        for child in foreign:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def _check_config(self) -> None:
        cfg_path = self.path / _CONFIG_NAME
        if cfg_path.exists():
            try:
                old = json.loads(cfg_path.read_text())
            except (OSError, ValueError, UnicodeDecodeError):
                raise RunFolderError(f"{cfg_path} is unreadable; pass --overwrite to start over "
                                     "or choose another output folder") from None
            diffs = _config_diff(old, self.config, self.ignore)
            if diffs:
                raise RunFolderError(
                    f"{self.path} holds a run with another configuration "
                    f"({'; '.join(diffs)}); pass --overwrite to start over or choose another "
                    "output folder")
            self.resumed = True
            if old == self.config:
                return
        elif any(p.name not in (_LOCK_NAME,) for p in self.path.iterdir()):
            # files from an older graphlab (no config.json) or someone else's folder
            raise RunFolderError(f"{self.path} is not empty and records no configuration "
                                 "(config.json); pass --overwrite to start over or choose "
                                 "another output folder")
        atomic_write_json(cfg_path, self.config)

    @property
    def locked(self) -> bool:
        """Whether this object currently holds the folder's lock."""
        return self._fd is not None


# --------------------------------------------------------------------------- results schema
def _git_commit() -> str | None:
    # the commit of the graphlab checkout this code runs from; None for an installed wheel
    here = Path(__file__).resolve().parent
    try:
        top = subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=True)
        toplevel, commit = top.stdout.split()[:2]
        if Path(toplevel).resolve() != here.parent:
            return None
        dirty = subprocess.run(["git", "-C", toplevel, "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=5)
        return commit + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except Exception:  # noqa: BLE001 - provenance is best effort and must never fail a run
        return None


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.machine(),
                            "cpu_count": os.cpu_count(), "cuda": None}
    try:
        import torch

        if torch.cuda.is_available():
            info["cuda"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        pass
    return info


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "torch_geometric", "graphlab"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def results_record(*, task: str, dataset: str | None, model: str | None, metric: str | None,
                   config: Mapping[str, Any], runs: list[Any], summary: Mapping[str, Any],
                   timings: Mapping[str, Any], extra: Mapping[str, Any] | None = None
                   ) -> dict[str, Any]:
    """A results record in the ``graphlab.results/1`` schema.

    Args:
        task: What produced it (``"train"``, a benchmark's registered name, ...).
        dataset, model, metric: What was measured (``None`` where it does not apply).
        config: The full configuration of the job.
        runs: One entry per seed/fold/case.
        summary: The headline numbers (e.g. ``test_mean``, ``test_std``).
        timings: Seconds (e.g. ``seconds_per_epoch``, ``total``).
        extra: Anything else, stored under ``"extra"``.

    Returns:
        The record, with ``schema``, ``commit`` (``git rev-parse HEAD`` of the graphlab checkout,
        ``-dirty`` when it has changes, ``None`` when not run from a checkout), ``date`` (UTC,
        ISO 8601), ``machine`` and ``versions`` (python, torch, torch_geometric, graphlab) added.
    """
    return to_json({
        "schema": RESULTS_SCHEMA, "task": task, "dataset": dataset, "model": model,
        "metric": metric, "config": dict(config), "runs": list(runs), "summary": dict(summary),
        "timings": dict(timings), "extra": dict(extra or {}), "commit": _git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(), "versions": _versions(),
    })


def write_results(path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write a results record (see :func:`results_record`) as strict JSON, atomically."""
    if record.get("schema") != RESULTS_SCHEMA:
        raise ValueError(f"not a {RESULTS_SCHEMA} record (build it with results_record); got "
                         f"schema={record.get('schema')!r}")
    return atomic_write_json(path, record)
