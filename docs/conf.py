"""Sphinx configuration for graphlab's API reference (built by ``make docs``, warnings as errors).

The API pages are generated at build time from each subpackage's ``__all__``, so a new public name
is documented (and its docstring checked) without editing any page by hand.
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path

import graphlab

project = "graphlab"
author = "graphlab contributors"
copyright = "2026, graphlab contributors"  # noqa: A001 - Sphinx's name
release = graphlab.__version__ if hasattr(graphlab, "__version__") else "0.0.0"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_mock_imports = ["rdkit"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# PyG's docstrings carry a "Shapes:" section beside "Args:".
napoleon_custom_sections = [("Shapes", "params_style")]
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "torch": ("https://pytorch.org/docs/stable", None),
    "torch_geometric": ("https://pytorch-geometric.readthedocs.io/en/latest", None),
}
# Offline builds (CI has no internet beyond package registries): intersphinx must not fail.
if os.environ.get("GRAPHLAB_DOCS_OFFLINE", "1") == "1":
    intersphinx_mapping = {}

html_theme = "furo"
html_title = "graphlab"
exclude_patterns = ["_build"]
suppress_warnings = ["ref.python"]  # re-exported names resolve to several targets

# ---------------------------------------------------------------- generated API pages
API_PACKAGES = {
    "graphlab.conv": "Message-passing layers",
    "graphlab.aggr": "Aggregations",
    "graphlab.transforms": "Transforms",
    "graphlab.rewiring": "Probabilistic rewiring (PR-MPNN)",
    "graphlab.models": "Models",
    "graphlab.metanets": "Metanetworks: networks as graphs",
    "graphlab.zoo": "Model zoos and graph-of-networks analysis",
    "graphlab.datasets": "Datasets",
    "graphlab.testing": "The conformance suite",
    "graphlab.utils": "Utilities",
    "graphlab.nn": "Building blocks (orthogonal maps)",
    "graphlab.runfolder": "Run folders, atomic files and the results schema",
    "graphlab.engine": "The training engine",
    "graphlab.train": "Training jobs (``graphlab train``)",
    "graphlab.presets": "Paper presets (``graphlab train --preset paper``)",
}


def _entry(package: str, name: str, obj: object) -> str:
    target = f"{package}.{name}"
    if inspect.isclass(obj):
        return f".. autoclass:: {target}\n   :members:\n"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return f".. autofunction:: {target}\n"
    # constants: autodata would show the docstring of ``dict``/``list`` itself
    return f".. py:data:: {target}\n   :type: {type(obj).__name__}\n"


def _write_api_pages(app) -> None:  # noqa: ANN001 - Sphinx's application object
    api = Path(app.srcdir) / "api"
    api.mkdir(exist_ok=True)
    toc = []
    for package, title in API_PACKAGES.items():
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue  # a package that does not exist in this version has no page
        names = list(getattr(module, "__all__", []))
        stem = package.replace("graphlab.", "")
        lines = [title, "=" * len(title), "", f".. automodule:: {package}", "   :no-members:", ""]
        for name in names:
            lines += [_entry(package, name, getattr(module, name)), ""]
        text = "\n".join(lines)
        page = api / f"{stem}.rst"
        if not page.exists() or page.read_text() != text:
            page.write_text(text)
        toc.append(f"   api/{stem}")
    index = Path(app.srcdir) / "api.rst"
    text = "API reference\n=============\n\n.. toctree::\n   :maxdepth: 1\n\n" + "\n".join(toc) + "\n"
    if not index.exists() or index.read_text() != text:
        index.write_text(text)


def setup(app) -> None:  # noqa: ANN001
    app.connect("builder-inited", _write_api_pages)
