"""The speed benchmarks' anchors module (``benchmarks/common/anchors.py``), checked from the checkout.

The harness is not installed, so these tests never import it (``tests/test_packaging.py``): one
fresh interpreter, started from the repository root, runs every check below and reports each
outcome as JSON; each test asserts its own. Checked: the stand-ins for ``torch_scatter`` /
``torch_sparse`` / ``torch_householder`` against plain torch references on random and empty
inputs (with the real packages installed, the same checks hold for them); the ``AnchorMissing``
messages; loading a module from a fake checkout without leaking its packages; the ratio, scaling
and row helpers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHECKS = r'''
import importlib, json, os, sys, traceback
from pathlib import Path

import torch

anchors = importlib.import_module("benchmarks.common.anchors")
FAKE = Path(sys.argv[1])
results = {}


def check(fn):
    try:
        fn()
        results[fn.__name__] = "ok"
    except Exception:  # every failure is reported, with its traceback
        results[fn.__name__] = traceback.format_exc()[-2000:]
    return fn


def raises(error, fn, *args):
    try:
        fn(*args)
    except error as caught:
        return caught
    raise AssertionError(f"{fn.__name__}{args} raised no {error.__name__}")


def close(a, b, tol=1e-12):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, atol=tol, rtol=0), (a - b).abs().max()


# the stand-ins (or the real packages, when installed) are what the anchors import
saved = {k: sys.modules.pop(k) for k in list(sys.modules)
         if k.split(".")[0] in ("torch_scatter", "torch_sparse", "torch_householder")}
anchors._install_shims()
import torch_householder  # noqa: E402
import torch_scatter  # noqa: E402
import torch_sparse  # noqa: E402

gen = torch.Generator().manual_seed(0)
dt = torch.float64


@check
def scatter_add_matches_index_add():
    for n_src, dim_size in ((50, 7), (50, None), (0, 4)):
        src = torch.randn(n_src, 3, generator=gen, dtype=dt)
        index = torch.randint(0, 7, (n_src,), generator=gen)
        size = dim_size if dim_size is not None else (int(index.max()) + 1 if n_src else 0)
        ref = torch.zeros(size, 3, dtype=dt).index_add_(0, index, src)
        close(torch_scatter.scatter_add(src, index, dim=0, dim_size=dim_size), ref)
        close(torch_scatter.scatter(src, index, dim=0, dim_size=dim_size, reduce="sum"), ref)


@check
def scatter_last_dim_and_out():
    src = torch.randn(4, 30, generator=gen, dtype=dt)
    index = torch.randint(0, 5, (30,), generator=gen)
    ref = torch.zeros(4, 5, dtype=dt).index_add_(1, index, src)
    close(torch_scatter.scatter_add(src, index, dim=-1, dim_size=5), ref)
    out = torch.ones(4, 5, dtype=dt)
    close(torch_scatter.scatter_add(src, index, dim=1, out=out), ref + 1)


@check
def scatter_mean_divides_by_counts():
    src = torch.randn(40, 2, generator=gen, dtype=dt)
    index = torch.randint(0, 6, (40,), generator=gen)
    dense = torch.zeros(8, 40, dtype=dt)
    dense[index, torch.arange(40)] = 1.0
    count = dense.sum(1, keepdim=True)
    ref = (dense @ src) / count.clamp(min=1)  # empty segments (6, 7) stay 0
    close(torch_scatter.scatter(src, index, dim=0, dim_size=8, reduce="mean"), ref)
    empty = torch_scatter.scatter(src[:0], index[:0], dim=0, dim_size=3, reduce="mean")
    close(empty, torch.zeros(3, 2, dtype=dt))


@check
def scatter_rejects_other_reductions():
    src, index = torch.randn(3, 2), torch.tensor([0, 1, 1])
    try:
        torch_scatter.scatter(src, index, dim=0, reduce="max")
    except NotImplementedError as error:
        if getattr(torch_scatter, "__graphlab_shim__", False):
            assert "max" in str(error)
        return
    assert not getattr(torch_scatter, "__graphlab_shim__", False), "the shim must not guess"


def random_coo(m, n, nnz):
    index = torch.stack([torch.randint(0, m, (nnz,), generator=gen),
                         torch.randint(0, n, (nnz,), generator=gen)])
    value = torch.randn(nnz, generator=gen, dtype=dt)
    dense = torch.zeros(m, n, dtype=dt).index_put_((index[0], index[1]), value, accumulate=True)
    return index, value, dense


def to_dense(index, value, m, n):
    return torch.zeros(m, n, dtype=dt).index_put_((index[0], index[1]), value, accumulate=True)


@check
def coalesce_sums_duplicates_in_row_major_order():
    for nnz in (60, 0):
        index, value, dense = random_coo(5, 6, nnz)
        idx, val = torch_sparse.coalesce(index, value, 5, 6)
        close(to_dense(idx, val, 5, 6), dense)
        keys = idx[0] * 6 + idx[1]
        assert bool((keys[1:] > keys[:-1]).all()), "sorted and unique"


@check
def transpose_is_the_dense_transpose():
    index, value, dense = random_coo(4, 7, 30)
    idx, val = torch_sparse.transpose(index, value, 4, 7)
    close(to_dense(idx, val, 7, 4), dense.t())


@check
def spmm_is_the_dense_product():
    for nnz in (40, 0):
        index, value, dense = random_coo(6, 5, nnz)
        matrix = torch.randn(5, 3, generator=gen, dtype=dt)
        close(torch_sparse.spmm(index, value, 6, 5, matrix), dense @ matrix)


@check
def spspmm_is_the_dense_product():
    a_index, a_value, a = random_coo(4, 5, 12)
    b_index, b_value, b = random_coo(5, 3, 9)
    idx, val = torch_sparse.spspmm(a_index, a_value, b_index, b_value, 4, 5, 3)
    close(to_dense(idx, val, 4, 3), a @ b)
    e_index, e_value, _ = random_coo(5, 3, 0)
    idx, val = torch_sparse.spspmm(a_index, a_value, e_index, e_value, 4, 5, 3)
    close(to_dense(idx, val, 4, 3), torch.zeros(4, 3, dtype=dt))


def reflector_product(v, tau):
    # Q = H_1 ... H_k applied to the first k columns of I, H_i = I - tau_i v_i v_i^T
    out = torch.eye(v.size(-2), v.size(-1), dtype=v.dtype).expand_as(v).clone()
    for i in reversed(range(v.size(-1))):
        u = v[..., :, i:i + 1]
        out = out - tau[..., i, None, None] * u @ (u.transpose(-1, -2) @ out)
    return out


@check
def householder_orgqr_is_the_reflector_product():
    # the form the sheaf models pass: unit lower triangular, batched and not
    for shape in ((7, 4, 4), (5, 3), (0, 3, 3)):
        v = torch.randn(*shape, generator=gen, dtype=dt).tril(-1)
        v = v + torch.eye(shape[-2], shape[-1], dtype=dt)
        tau = 2.0 / (v * v).sum(-2)
        q = torch_householder.torch_householder_orgqr(v)
        close(q, reflector_product(v, tau), 1e-10)
        eye = torch.eye(shape[-1], dtype=dt).expand(*shape[:-2], -1, -1)
        close(q.transpose(-1, -2) @ q, eye, 1e-10)
        given = torch.rand(*shape[:-2], shape[-1], generator=gen, dtype=dt) + 0.5
        close(torch_householder.torch_householder_orgqr(v, given), reflector_product(v, given),
              1e-10)


for key in [k for k in sys.modules if k.split(".")[0] in ("torch_scatter", "torch_sparse",
                                                           "torch_householder")]:
    del sys.modules[key]
sys.modules.update(saved)


@check
def missing_anchor_dir_says_how_to_give_one():
    os.environ.pop(anchors.ANCHOR_ENV, None)
    message = str(raises(anchors.AnchorMissing, anchors.find_anchor, "egnn"))
    assert "vgsatorras/egnn" in message and "--anchor-dir" in message, message
    assert anchors.ANCHOR_ENV in message, message
    assert anchors.skipped_anchors()["vgsatorras/egnn"] == message


@check
def missing_checkout_names_the_repository_to_clone():
    anchors.set_anchor_dir(FAKE)
    message = str(raises(anchors.AnchorMissing, anchors.find_anchor, "PR-MPNN"))
    assert "https://github.com/chendiqian/PR-MPNN" in message, message
    assert "simple/simple.py" in message and str(FAKE) in message, message


@check
def anchor_missing_is_a_task_skip():
    registry = importlib.import_module("benchmarks.common.registry")
    assert issubclass(anchors.AnchorMissing, registry.TaskSkipped)


@check
def unknown_anchor_is_a_value_error():
    error = raises(ValueError, anchors.find_anchor, "no-such-anchor")
    assert "no-such-anchor" in str(error) and "egnn" in str(error), str(error)


@check
def missing_package_says_how_to_install_it():
    error = raises(anchors.AnchorMissing, anchors.optional_package, "graphlab_no_such_package_xyz")
    assert "pip install 'graphlab[anchors]'" in str(error), str(error)
    assert "graphlab_no_such_package_xyz" in anchors.skipped_anchors()


@check
def loads_from_a_fake_checkout_without_leaking_its_packages():
    anchors.set_anchor_dir(FAKE)
    sentinel = type(sys)("models")  # a project's own top-level "models" must survive
    sys.modules["models"] = sentinel
    module = anchors.load_anchor_module("egnn", "models.egnn_clean.egnn_clean")
    assert module.ANSWER == 42 and module.helper() == "helper"
    assert sys.modules["models"] is sentinel
    assert not any(k.startswith("models.") for k in sys.modules), "anchor modules leaked"
    assert str(FAKE / "egnn") not in sys.path
    # its torch_scatter import got the stand-in (or the real package), with the same meaning
    src = torch.tensor([1.0, 2.0, 3.0])
    close(module.segment_sum(src, torch.tensor([0, 2, 0]), 3), torch.tensor([4.0, 0.0, 2.0]))
    for name in anchors.shims_used():
        assert name in ("torch_scatter", "torch_sparse", "torch_householder"), name
    again = anchors.load_anchor_module("egnn", "models.egnn_clean.egnn_clean")
    assert again is not module, "each load imports the checkout afresh"
    del sys.modules["models"]


@check
def ratio_summary_is_per_round():
    summary = anchors.ratio_summary([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert summary == {"ratio_median": 1.0, "ratio_min": 0.5, "ratio_max": 1.5}, summary
    for bad in (([], []), ([1.0], [1.0, 2.0])):
        raises(ValueError, anchors.ratio_summary, *bad)


@check
def scaling_exponent_recovers_a_power_law():
    sizes = [1e3, 4e3, 1.6e4, 6.4e4]
    assert abs(anchors.scaling_exponent(sizes, [3e-6 * s ** 1.5 for s in sizes]) - 1.5) < 1e-12
    for bad in (([1.0], [1.0]), ([2.0, 2.0], [1.0, 3.0])):
        raises(ValueError, anchors.scaling_exponent, *bad)


@check
def anchor_row_has_the_table_keys():
    row = anchors.anchor_row("w", "their layer", [0.010, 0.012, 0.011], [0.020, 0.020, 0.020],
                             30.0, 60.0, exponent=1.0)
    assert row["graphlab_ms"] == 11.0 and row["anchor_ms"] == 20.0, row
    assert row["ratio_median"] == 0.55 and row["ratio_min"] == 0.5 and row["ratio_max"] == 0.6
    assert row["memory_ratio"] == 0.5 and row["exponent"] == 1.0, row
    assert anchors.anchor_row("w", "a", [1.0], [1.0])["memory_ratio"] is None


@check
def interleaved_times_warms_up_then_alternates():
    calls = []
    steps = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = anchors.interleaved_times(steps, rounds=3, min_run_time=0.001)
    assert set(times) == {"a", "b"} and all(len(v) == 3 for v in times.values()), times
    assert calls[:2] == ["a", "b"], calls[:2]  # one warm-up call each, in order
    assert calls[2] == "a" and "b" in calls, calls[:5]
    raises(ValueError, anchors.interleaved_times, steps, 0, 0.001)


print(json.dumps(results))
'''

FAKE_MODULE = '''
from torch_scatter import scatter_add

from models.util import helper

ANSWER = 42


def segment_sum(src, index, n):
    return scatter_add(src, index, dim=0, dim_size=n)
'''


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, str]:
    fake = tmp_path_factory.mktemp("anchors")
    package = fake / "egnn" / "models" / "egnn_clean"
    package.mkdir(parents=True)
    (fake / "egnn" / "models" / "__init__.py").write_text("")
    (fake / "egnn" / "models" / "util.py").write_text("def helper():\n    return 'helper'\n")
    (package / "__init__.py").write_text("")
    (package / "egnn_clean.py").write_text(textwrap.dedent(FAKE_MODULE))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("GRAPHLAB_ANCHOR_DIR", None)
    res = subprocess.run([sys.executable, "-c", CHECKS, str(fake)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


NAMES = re.findall(r"^@check\ndef (\w+)\(", CHECKS, flags=re.MULTILINE)


def test_every_check_ran(results):
    assert sorted(results) == sorted(NAMES)
    assert len(NAMES) >= 15


@pytest.mark.parametrize("name", NAMES)
def test_anchor_check(results, name):
    assert results[name] == "ok", results[name]
