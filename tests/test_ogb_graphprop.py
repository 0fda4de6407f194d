"""The OGB benchmark script: model selection by name, resumable seeds, config guard, summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from ogb.utils import smiles2graph
from torch_geometric.data import Batch, Data

from benchmarks.ogb_graphprop import (
    MODELS,
    add_conformers,
    conformer_positions,
    model_kwargs,
    run_suite,
)
from graphlab.datasets import DatasetBundle, TaskSpec
from graphlab.models import build_model
from graphlab.testing.equivariance import assert_e_n_equivariant
from graphlab.testing.tiny_bundle import tiny_regression_bundle as tiny_bundle
from graphlab.utils.metrics import rmse

# aliphatic, aromatic, charged, fused and bridged rings, a stereocentre
SMILES = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
          "C[NH3+]", "C12C3C4C1C5C2C3C45", "O=C(O)[C@@H](N)Cc1ccccc1", "ClC(Cl)(Cl)Cl"]


def molecule_bundle() -> DatasetBundle:
    """The molecules above with OGB's featuriser and a smooth regression target."""
    graphs = []
    for i, smi in enumerate(SMILES):
        g = smiles2graph(smi)
        graphs.append(Data(x=torch.as_tensor(g["node_feat"]),
                           edge_index=torch.as_tensor(g["edge_index"]),
                           edge_attr=torch.as_tensor(g["edge_feat"]),
                           y=torch.tensor([[float(g["num_nodes"]) + 0.1 * i]]),
                           num_nodes=g["num_nodes"], smiles=smi))
    split = {"train": torch.arange(5), "valid": torch.arange(5, 7), "test": torch.arange(6, 8)}
    spec = TaskSpec("graph", 9, 1, "mse", "rmse", edge_dim=3, molecular=True)
    return DatasetBundle("mols", graphs, [split], spec, "generated", "generated", rmse)


def test_every_family_is_selectable_by_name():
    from graphlab.models import available_models

    assert set(MODELS) <= set(available_models())
    assert model_kwargs("gin", 32, 2) == {"hidden_channels": 32, "num_layers": 2}
    assert model_kwargs("pathnn-ap", 32, 2) == {"hidden_channels": 32, "max_length": 2}
    assert model_kwargs("sheaf-graph", 30, 2) == {"hidden_channels": 10, "num_layers": 2}
    assert model_kwargs("gin", None, None) == {}  # the paper's defaults


def test_resumable_suite(tmp_path: Path):
    load = lambda name: tiny_bundle()  # noqa: E731
    kw = dict(epochs=1, hidden=8, layers=1, batch_size=16, progress=False, load=load)
    rows = run_suite(["tiny"], ["gin", "gcn"], tmp_path, seeds=2, **kw)
    gin = rows[0]
    assert gin["model"] == "gin" and gin["seeds"] == 2 and gin["params"] > 0
    assert gin["s/epoch"] >= 0 and "±" in gin["ours (test)"]

    # more seeds: the finished ones are read back, only the new one trains
    first = tmp_path / "tiny" / "gin" / "run_0" / "result.json"
    stamp = first.stat().st_mtime_ns
    rows = run_suite(["tiny"], ["gin"], tmp_path, seeds=3, **kw)
    assert rows[0]["seeds"] == 3 and first.stat().st_mtime_ns == stamp
    results = json.loads((tmp_path / "tiny" / "gin" / "results.json").read_text())
    assert [s["run"] for s in results["seeds"]] == [0, 1, 2]

    # other hyperparameters in the same folder are refused, not silently mixed
    rows = run_suite(["tiny"], ["gin"], tmp_path, seeds=3, **{**kw, "hidden": 16})
    assert "another configuration" in rows[0]["note"]

    # the summary merges the commands' rows and is complete JSON
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {(r["dataset"], r["model"]) for r in summary["rows"]} == {("tiny", "gin"),
                                                                    ("tiny", "gcn")}
    assert "| tiny" in (tmp_path / "summary.md").read_text()
    assert not list(tmp_path.rglob("*.tmp"))


# --------------------------------------------------------------------------- EGNN on conformers
def test_conformers_follow_ogb_atom_order():
    bundle = add_conformers(molecule_bundle(), seed=3)
    again = add_conformers(molecule_bundle(), seed=3)
    for data, same in zip(bundle.dataset, again.dataset):
        assert data.pos.shape == (data.num_nodes, 3) and torch.isfinite(data.pos).all()
        assert torch.equal(data.pos, same.pos)  # seeded
        # bonded heavy atoms sit at covalent distances: the rows are OGB's atoms, in its order
        src, dst = data.edge_index
        bonds = (data.pos[src] - data.pos[dst]).norm(dim=-1)
        assert bonds.numel() == 0 or (bonds.min() > 1.0 and bonds.max() < 2.0)
        far = torch.cdist(data.pos, data.pos) + 10 * torch.eye(data.num_nodes)
        assert far.min() > 1.0  # no two atoms on top of each other


def test_conformer_errors_and_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(ValueError, match="cannot parse"):
        conformer_positions("C1CC", 3)
    with pytest.raises(ValueError, match="3 heavy atoms, the graph has 4"):
        conformer_positions("CCO", 4)
    from rdkit.Chem import AllChem

    # a molecule ETKDG cannot embed (both the seeded and the random-coordinate attempt fail)
    monkeypatch.setattr(AllChem, "EmbedMolecule", lambda mol, params: -1)
    with pytest.raises(ValueError, match="could not embed"):
        conformer_positions("CCO", 3)
    with pytest.raises(ValueError, match="could not embed"):
        add_conformers(molecule_bundle(), strict=True)
    cache = tmp_path / "conformers.pt"
    with pytest.warns(UserWarning, match="8 of 8 molecules could not be embedded"):
        bundle = add_conformers(molecule_bundle(), cache=cache)
    assert all(float(d.pos.abs().sum()) == 0 for d in bundle.dataset)
    monkeypatch.undo()
    # the cache is read back as is (weights_only), a wrong-length cache is refused
    assert all(float(d.pos.abs().sum()) == 0 for d in add_conformers(molecule_bundle(),
                                                                     cache=cache).dataset)
    short = molecule_bundle()
    short = DatasetBundle("short", short.dataset[:3], short.splits, short.spec, "", "", rmse)
    with pytest.raises(ValueError, match="holds 8 conformers, short has 3 graphs"):
        add_conformers(short, cache=cache)
    with pytest.raises(ValueError, match="needs SMILES"):
        add_conformers(tiny_bundle())


def test_egnn_on_conformers_is_invariant():
    bundle = add_conformers(molecule_bundle())
    torch.manual_seed(0)
    model = build_model("egnn", bundle.spec, hidden_channels=16, num_layers=2).double().eval()
    batch = Batch.from_data_list(bundle.dataset)

    def predict(pos, vectors):
        out = batch.clone()
        out.pos = pos
        return model(out), None, []

    pred = predict(batch.pos.double(), [])[0]
    assert pred.shape == (len(SMILES), 1) and torch.isfinite(pred).all()
    # the conformers matter: the same molecules without coordinates predict differently
    assert not torch.allclose(pred, predict(torch.zeros_like(batch.pos.double()), [])[0])
    assert_e_n_equivariant(predict, batch.pos.double(), atol=1e-9)


def test_suite_trains_egnn_on_conformers(tmp_path: Path):
    load = lambda name: molecule_bundle()  # noqa: E731
    rows = run_suite(["mols"], ["egnn"], tmp_path, seeds=1, epochs=2, hidden=8, layers=2,
                     batch_size=4, progress=False, load=load)
    assert rows[0]["model"] == "egnn" and rows[0]["params"] > 0 and "±" in rows[0]["ours (test)"]
    cache = tmp_path / "mols" / "egnn" / "conformers.pt"
    positions = torch.load(cache, weights_only=True)
    assert [p.size(0) for p in positions] == [d.num_nodes for d in molecule_bundle().dataset]


def test_egnn_is_skipped_with_a_message_without_rdkit(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "rdkit", None)  # `from rdkit import ...` raises ImportError
    load = lambda name: molecule_bundle()  # noqa: E731
    rows = run_suite(["mols"], ["egnn", "gin"], tmp_path, seeds=1, epochs=1, hidden=8, layers=1,
                     batch_size=4, progress=False, load=load)
    assert "rdkit is not installed" in rows[0]["note"] and "graphlab[rdkit]" in rows[0]["note"]
    assert rows[1]["model"] == "gin" and rows[1]["params"] > 0  # the other models still run
