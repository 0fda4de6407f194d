r"""3-D coordinates for molecular graphs from seeded RDKit conformers.

OGB's molecule datasets (``ogbg-mol*``) carry no coordinates. E(n)-equivariant models such as
:class:`~graphlab.models.EGNN` need ``pos``; :func:`add_conformers` embeds every molecule of a
bundle with RDKit's ETKDGv3 (Riniker & Landrum, J. Chem. Inf. Model. 2015) and returns a copy
whose graphs carry ``pos`` of shape :math:`(|\mathcal{V}|, 3)`, rows in OGB's atom order::

    from graphlab.datasets import add_conformers, get_dataset

    bundle = add_conformers(get_dataset("ogbg-molfreesolv"), seed=0, cache="conformers.pt")

RDKit is an optional dependency (``pip install 'graphlab[rdkit]'``); without it both functions
raise an :class:`ImportError` that says so.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from graphlab.datasets.catalog import DatasetBundle

__all__ = ["add_conformers", "conformer_positions"]

_INSTALL = "pip install 'graphlab[rdkit]'"


def _import_rdkit() -> tuple[Any, Any, Any]:
    try:
        from rdkit import Chem
        from rdkit.Chem import AllChem
        from rdkit.rdBase import BlockLogs
    except ImportError as exc:
        raise ImportError(f"3-D conformers need RDKit, which is not installed ({_INSTALL})") from exc
    return Chem, AllChem, BlockLogs


def conformer_positions(smiles: str, num_atoms: int, seed: int = 0) -> Tensor:
    """3-D coordinates :math:`(N, 3)` of one molecule's heavy atoms from a seeded RDKit ETKDGv3
    embedding (hydrogens are added for the embedding and dropped afterwards).

    Rows follow OGB's atom order: ``smiles2graph`` numbers atoms as ``MolFromSmiles`` does, and
    ``AddHs`` appends the hydrogens after them. A molecule that ETKDG cannot embed from its
    distance-geometry start is retried from random coordinates (RDKit's advice for large or
    strained rings).

    Args:
        smiles (str): the molecule.
        num_atoms (int): the number of nodes of its graph (checked against the heavy atoms).
        seed (int): RDKit's ``randomSeed``; the same seed gives the same coordinates.

    Raises:
        ImportError: RDKit is not installed.
        ValueError: the SMILES does not parse, its heavy-atom count is not ``num_atoms`` or
            neither embedding attempt succeeds.
    """
    chem, all_chem, block_logs = _import_rdkit()
    # RDKit logs every failed parse and embedding attempt to stderr; our errors say it instead.
    # Blocked for this call only, so a user's own RDKit logging is left alone.
    block = block_logs()
    try:
        mol = chem.MolFromSmiles(smiles)
        if mol is None:
            raise ValueError(f"RDKit cannot parse the SMILES {smiles!r}")
        if mol.GetNumAtoms() != num_atoms:
            raise ValueError(f"SMILES {smiles!r} has {mol.GetNumAtoms()} heavy atoms, the graph "
                             f"has {num_atoms} nodes")
        mol_h = chem.AddHs(mol)
        params = all_chem.ETKDGv3()
        params.randomSeed = seed
        status = all_chem.EmbedMolecule(mol_h, params)
        if status != 0:
            params.useRandomCoords = True
            status = all_chem.EmbedMolecule(mol_h, params)
        if status != 0:
            raise ValueError(f"RDKit ETKDG could not embed a 3-D conformer for {smiles!r} "
                             f"(seed {seed})")
        return torch.as_tensor(mol_h.GetConformer().GetPositions()[:num_atoms], dtype=torch.float)
    finally:
        del block


def _smiles(bundle: DatasetBundle) -> list[str]:
    """Per-graph SMILES: a ``smiles`` attribute on the graphs, else OGB's ``mapping/mol.csv.gz``."""
    first = bundle.dataset[0]
    if isinstance(getattr(first, "smiles", None), str):
        return [d.smiles for d in bundle.dataset]
    root = getattr(bundle.dataset, "root", None)
    mapping = Path(root) / "mapping" / "mol.csv.gz" if root else None
    if mapping is None or not mapping.exists():
        where = f"no {mapping}" if mapping is not None else "no dataset root"
        raise ValueError(f"conformers need SMILES: {bundle.name} has no per-graph 'smiles' "
                         f"attribute and {where}")
    with gzip.open(mapping, "rt", newline="") as fh:
        return [row["smiles"] for row in csv.DictReader(fh)]


def _fingerprint(smiles: list[str]) -> str:
    return hashlib.sha256("\n".join(smiles).encode()).hexdigest()


def _read_cache(cache: Path, seed: int, name: str, smiles: list[str]) -> list[Tensor]:
    from graphlab.runfolder import safe_torch_load

    stored = safe_torch_load(cache, hint=f"delete {cache} to embed again")
    if not isinstance(stored, dict) or not {"seed", "smiles_sha256", "positions"} <= set(stored):
        raise ValueError(f"{cache} is not a conformer cache written by add_conformers; "
                         f"delete it to embed again")
    if len(stored["positions"]) != len(smiles):
        raise ValueError(f"{cache} holds {len(stored['positions'])} conformers, {name} has "
                         f"{len(smiles)} graphs")
    if stored["seed"] != seed or stored["smiles_sha256"] != _fingerprint(smiles):
        raise ValueError(f"{cache} holds conformers of other molecules or another seed "
                         f"(seed {stored['seed']}, asked for {seed}); use another cache file")
    return stored["positions"]


def add_conformers(bundle: DatasetBundle, seed: int = 0, strict: bool = False,
                   cache: str | Path | None = None) -> DatasetBundle:
    """A copy of a molecular bundle whose graphs carry RDKit 3-D conformer coordinates (``pos``).

    Every molecule is embedded with :func:`conformer_positions` (ETKDGv3, ``seed``). Its SMILES
    come from a ``smiles`` attribute of the graphs or, for OGB datasets, from the dataset's
    ``mapping/mol.csv.gz``.

    Args:
        bundle (DatasetBundle): a molecular dataset (e.g. ``get_dataset("ogbg-molhiv")``).
        seed (int): the embedding seed.
        strict (bool): if ``True``, a molecule that cannot be embedded raises its
            ``ValueError``; otherwise it gets zero coordinates (an E(n)-invariant model then sees
            all distances 0 for it) and the failures are counted in one warning.
        cache (str or Path, optional): a ``.pt`` file that stores the coordinates (written
            atomically), so a resumed run does not embed again. A cache written for other
            molecules or another seed is refused.

    Raises:
        ImportError: RDKit is not installed.
        ValueError: the graphs have no SMILES, or ``cache`` does not match the bundle or is
            unreadable (:class:`~graphlab.runfolder.CorruptFileError`).
    """
    _import_rdkit()
    smiles = _smiles(bundle)
    if len(smiles) != len(bundle.dataset):
        raise ValueError(f"{bundle.name} has {len(bundle.dataset)} graphs but {len(smiles)} SMILES")
    cache = Path(cache) if cache is not None else None
    if cache is not None and cache.exists():
        positions = _read_cache(cache, seed, bundle.name, smiles)
    else:
        positions, failed = [], []
        for i, (data, smi) in enumerate(zip(bundle.dataset, smiles)):
            try:
                positions.append(conformer_positions(smi, data.num_nodes, seed))
            except ValueError:
                if strict:
                    raise
                positions.append(torch.zeros(data.num_nodes, 3))
                failed.append(i)
        if failed:
            warnings.warn(f"{bundle.name}: {len(failed)} of {len(positions)} molecules could not "
                          f"be embedded in 3-D (graphs {failed[:5]}...); they get zero "
                          f"coordinates", stacklevel=2)
        if cache is not None:
            from graphlab.runfolder import atomic_torch_save

            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_torch_save({"seed": seed, "smiles_sha256": _fingerprint(smiles),
                               "positions": positions}, cache)
    graphs = []
    for data, pos in zip(bundle.dataset, positions):
        data = data.clone()
        data.pos = pos
        graphs.append(data)
    return dataclasses.replace(bundle, dataset=graphs)
