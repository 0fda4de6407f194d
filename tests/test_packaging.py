"""The distribution a user installs: a wheel of `graphlab` alone, with its metadata, and a library
that neither imports the benchmark harness nor guesses paths or writes the environment."""

from __future__ import annotations

import ast
import email
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "graphlab"


def _copy_source(dest: Path) -> Path:
    """The files a build reads, benchmarks/ and tests/ included: the wheel must leave them out."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "results", "_build")
    for name in ("graphlab", "benchmarks", "tests"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # built from a copy, so the checkout gets no build/ or egg-info from a test run
    src = _copy_source(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out), str(src)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = out.glob("graphlab-*.whl")
    return path


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(zf.read(name))


def test_wheel_holds_the_graphlab_package_only(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    version = _metadata(wheel)["Version"]
    assert {n.split("/")[0] for n in names} == {"graphlab", f"graphlab-{version}.dist-info"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # every module of the source tree is in the wheel (no subpackage left out by `find`)
    source = {p.relative_to(ROOT).as_posix() for p in LIBRARY.rglob("*.py")
              if "__pycache__" not in p.parts}
    assert source == {n for n in names if n.endswith(".py")}
    assert "graphlab/py.typed" in names
    assert f"graphlab-{version}.dist-info/licenses/LICENSE" in names
    with zipfile.ZipFile(wheel) as zf:
        entry_points = zf.read(f"graphlab-{version}.dist-info/entry_points.txt").decode()
    assert "graphlab = graphlab.cli:main" in entry_points


def test_wheel_metadata(wheel: Path):
    meta = _metadata(wheel)
    assert meta["License-Expression"] == "MIT"
    assert "License" not in meta  # the deprecated free-text field is gone
    assert not [c for c in meta.get_all("Classifier") if c.startswith("License ::")]
    assert "Typing :: Typed" in meta.get_all("Classifier")
    urls = {u.split(",")[0] for u in meta.get_all("Project-URL")}
    assert urls == {"Homepage", "Documentation", "Changelog", "Issues"}
    assert meta["Requires-Python"].startswith(">=")
    requires = meta.get_all("Requires-Dist")
    core = {r.split(";")[0].strip() for r in requires if "extra ==" not in r}
    names = {r.split(">")[0].split("=")[0].split("<")[0].strip() for r in core}
    assert {"torch", "torch-geometric"} <= names
    assert "matplotlib" not in names and "rdkit" not in names  # optional extras
    assert any(r.startswith("torch>=") for r in core)
    assert any(r.startswith("torch-geometric>=") for r in core)
    assert {"plot", "rdkit", "bench", "docs", "test"} <= set(meta.get_all("Provides-Extra"))
    # the long description is the README
    assert meta.get_payload().startswith("# graphlab")


@pytest.mark.slow
def test_installed_wheel_works_outside_the_checkout(wheel: Path, tmp_path: Path):
    """The wheel's own files, imported from a folder with no checkout in reach: every subpackage
    imports, the CLI answers, and there is no `benchmarks` module to import."""
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q",
                           "--target", str(site), str(wheel)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    packages = sorted(p.parent.relative_to(site).as_posix().replace("/", ".")
                      for p in (site / "graphlab").rglob("__init__.py"))
    code = (
        "import importlib, importlib.util, sys\n"
        f"for name in {packages!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(site)!r}), module.__file__\n"
        "assert importlib.util.find_spec('benchmarks') is None, 'benchmarks is importable'\n"
        "print('ok', len(sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("GRAPHLAB_DATA_DIR", None)
    work = tmp_path / "elsewhere"
    work.mkdir()
    run = lambda *args: subprocess.run([sys.executable, *args], cwd=work, env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=300)
    proc = run("-c", code)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    version = run("-m", "graphlab", "--version")
    assert version.returncode == 0, version
    assert version.stdout.split() == ["graphlab", _metadata(wheel)["Version"]]
    for verb in ([], ["train"], ["datasets"], ["zoo"]):
        proc = run("-m", "graphlab", *verb, "--help")
        assert proc.returncode == 0 and proc.stdout.startswith("usage: graphlab"), (verb, proc)
    # the harness's verb went with the harness
    assert run("-m", "graphlab", "bench", "--help").returncode != 0


# --------------------------------------------------------------------------- the package boundary
def _modules(folder: Path):
    for path in sorted(folder.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path, ast.parse(path.read_text(), filename=str(path))


def _imports_benchmarks(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "benchmarks"
                                                for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == "benchmarks":
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr == "import_module" and node.args and \
                isinstance(node.args[0], ast.Constant) and \
                str(node.args[0].value).startswith("benchmarks"):
            return True
    return False


@pytest.mark.parametrize("folder", ["graphlab", "tests"])
def test_nothing_imports_the_benchmark_harness(folder: str):
    # the harness is not installed: the library and its tests must work without it (a test may
    # still run `python -m benchmarks...` in a subprocess from the checkout)
    offenders = [str(p.relative_to(ROOT)) for p, tree in _modules(ROOT / folder)
                 if _imports_benchmarks(tree)]
    assert offenders == []


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and \
        isinstance(node.value, ast.Name) and node.value.id == "os"


def _environ_writes(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
        if any(isinstance(t, ast.Subscript) and _is_environ(t.value) for t in targets):
            lines.append(node.lineno)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                (_is_environ(node.func.value) and node.func.attr in
                 {"setdefault", "update", "pop", "popitem", "clear", "__setitem__"})
                or (isinstance(node.func.value, ast.Name) and node.func.value.id == "os"
                    and node.func.attr in {"putenv", "unsetenv"})):
            lines.append(node.lineno)
    return sorted(lines)


#: modules allowed to look at ``__file__``, and why
FILE_USERS = {
    # provenance of results: the commit of the checkout the code runs from (None for a wheel)
    "graphlab/runfolder.py",
}


def test_library_does_not_write_the_environment_or_guess_paths():
    writes = {str(p.relative_to(ROOT)): _environ_writes(tree) for p, tree in _modules(LIBRARY)}
    assert {k: v for k, v in writes.items() if v} == {}
    # a path built from the module's own location reaches outside the installed package
    guesses = {str(p.relative_to(ROOT)) for p, tree in _modules(LIBRARY)
               if any(isinstance(n, ast.Name) and n.id == "__file__" for n in ast.walk(tree))}
    assert guesses <= set(FILE_USERS), "use a parameter or an environment variable, not __file__"


def test_environment_checks_catch_what_they_look_for():
    # the two static checks above, on code that does what they forbid
    bad = ast.parse("import os\nos.environ['A'] = '1'\nos.environ.setdefault('B', '2')\n"
                    "os.putenv('C', '3')\ndel os.environ['A']\nx = os.environ.get('A')\n")
    assert _environ_writes(bad) == [2, 3, 4, 5]
    assert _imports_benchmarks(ast.parse("from benchmarks.egnn_speed import x"))
    assert _imports_benchmarks(ast.parse("import benchmarks"))
    assert _imports_benchmarks(ast.parse("importlib.import_module('benchmarks.common')"))
    assert not _imports_benchmarks(ast.parse("from . import benchmarks_util\nimport graphlab"))
