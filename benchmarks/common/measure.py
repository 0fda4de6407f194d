"""Time and peak memory of one step, the way every speed benchmark measures them.

* **Time**: :func:`cpu_time` is the median of ``torch.utils.benchmark.Timer.blocked_autorange``
  with ``timer=time.process_time``: the process's CPU time rather than wall time, because the
  benchmark machines are shared and wall time mostly measures waiting for a core (benchmarks run
  on one thread, so CPU time equals compute time).
* **Peak memory**: :func:`measure_in_subprocess` runs the step in a fresh interpreter (one
  thread, ``MALLOC_MMAP_THRESHOLD_=65536`` so that large tensors are unmapped when freed and the
  resident set follows the live tensor bytes). After an optional warm-up call (kernel code,
  autograd initialisation, ``torch.compile``), the kernel's peak-RSS counter is reset
  (``/proc/self/clear_refs``, Linux >= 4.0) and the figure is the peak resident set (``VmHWM``)
  over ``steps`` calls minus the resident set just before them: every tensor those calls
  allocate, autograd's saved tensors included. Where ``clear_refs`` is not writable the peak is
  ``getrusage``'s ``ru_maxrss``, which also covers the warm-up.

The step is built in the worker by a *factory*, named ``"module:function"`` and called with JSON
keyword arguments (inputs too large for the command line travel through a ``torch.save`` file):
``factory(**kwargs)`` returns a zero-argument callable, e.g. one forward + backward pass.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["cpu_time", "measure_in_subprocess", "peak_memory_mb"]

_REPO = Path(__file__).resolve().parents[2]


def cpu_time(step: Callable[[], Any], min_run_time: float, slow_s: float | None = None) -> float:
    """Median CPU seconds of ``step()`` (``blocked_autorange``; the caller warms up first).

    With ``slow_s``, a step whose first call takes longer than that is timed by that call alone
    (e.g. a padded baseline that takes many seconds per call).
    """
    from torch.utils.benchmark import Timer

    if slow_s is not None:
        start = time.process_time()
        step()
        first = time.process_time() - start
        if first > slow_s:
            return first
    timer = Timer("step()", globals={"step": step}, timer=time.process_time)
    return timer.blocked_autorange(min_run_time=min_run_time).median


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def peak_memory_mb(step: Callable[[], Any], steps: int = 1) -> float:
    """Peak resident-set growth (MB) over ``steps`` calls of ``step`` in *this* process.

    Meaningful only in a fresh process (see :func:`measure_in_subprocess`).
    """
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak resident set
        before = _status_kb("VmRSS")
        for _ in range(steps):
            step()
        peak = _status_kb("VmHWM")
    except OSError:  # no clear_refs: the lifetime peak, warm-up included
        with open("/proc/self/statm") as f:
            before = int(f.read().split()[1]) * resource.getpagesize() // 1024
        for _ in range(steps):
            step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak - before) / 1024


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    module, _, name = spec["factory"].partition(":")
    step = getattr(importlib.import_module(module), name)(**spec["kwargs"])
    res: dict[str, Any] = {}
    if spec["warmup"]:
        start = time.process_time()
        step()
        res["warmup_s"] = time.process_time() - start
    res["peak_mb"] = peak_memory_mb(step, spec["steps"])
    if spec["min_run_time"] is not None:
        res["time_s"] = cpu_time(step, spec["min_run_time"], spec["slow_s"])
    return res


def measure_in_subprocess(factory: str, kwargs: dict[str, Any] | None = None, *,
                          warmup: bool = True, steps: int = 1, min_run_time: float | None = None,
                          slow_s: float | None = None, timeout: float = 900) -> dict[str, Any]:
    """Peak memory (and, with ``min_run_time``, CPU time) of a step in a fresh interpreter.

    Args:
        factory: ``"module:function"``; ``function(**kwargs)`` builds the step.
        kwargs: JSON-serialisable keyword arguments of the factory.
        warmup: Call the step once before measuring (its CPU seconds are in ``warmup_s``).
        steps: Calls covered by the peak-memory figure.
        min_run_time: Also time the step (:func:`cpu_time`) for at least this many seconds.
        slow_s: See :func:`cpu_time`.
        timeout: Seconds before the worker is stopped.

    Returns:
        ``{"peak_mb", "time_s" (with min_run_time), "warmup_s" (with warmup)}``, or
        ``{"error": "..."}`` when the worker failed or timed out.
    """
    spec = {"factory": factory, "kwargs": kwargs or {}, "warmup": warmup, "steps": steps,
            "min_run_time": min_run_time, "slow_s": slow_s}
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="65536")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "benchmarks.common.measure", json.dumps(spec)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                             cwd=_REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["worker failed"])[-1][:160]}
    return json.loads(res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
