"""Shared test configuration.

* Every test process gets its own empty dataset cache (no state leaks between runs or xdist
  workers, and the read-only mirror is never written to).
* Tests marked ``real_data`` need the offline mirror named by ``GRAPHLAB_DATA_DIR``; a user without
  it sees them skipped with the reason. In CI (``CI=true``) such a skip fails the run: real-data
  tests must run there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REAL_DATA_SKIPS: list[str] = []


def _mirror() -> Path | None:
    path = os.environ.get("GRAPHLAB_DATA_DIR")
    return Path(path) if path and Path(path).is_dir() else None


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    old = os.environ.get("GRAPHLAB_CACHE")
    os.environ["GRAPHLAB_CACHE"] = str(tmp_path_factory.mktemp("graphlab-cache"))
    yield
    if old is None:
        os.environ.pop("GRAPHLAB_CACHE", None)
    else:
        os.environ["GRAPHLAB_CACHE"] = old


@pytest.fixture
def data_mirror() -> Path:
    """The offline data mirror (``GRAPHLAB_DATA_DIR``)."""
    mirror = _mirror()
    if mirror is None:
        pytest.skip("needs the offline data mirror: set GRAPHLAB_DATA_DIR to a folder laid out "
                    "like shared/data (see its README)")
    return mirror


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _mirror() is not None:
        return
    skip = pytest.mark.skip(reason="needs the offline data mirror: set GRAPHLAB_DATA_DIR to a "
                                   "folder laid out like shared/data (see its README)")
    for item in items:
        if "real_data" in item.keywords:
            item.add_marker(skip)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "real_data" in report.keywords:
        _REAL_DATA_SKIPS.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() == "true" and _REAL_DATA_SKIPS and \
            not hasattr(session.config, "workerinput"):
        print(f"\nCI: {len(_REAL_DATA_SKIPS)} real-data test(s) were skipped; they must run in "
              f"CI (is GRAPHLAB_DATA_DIR set?): {_REAL_DATA_SKIPS[:5]}")
        session.exitstatus = 1
