"""RDKit 3-D conformers for molecular graphs: atom order, seeding, failures, cache, EGNN on them."""

from __future__ import annotations

import csv
import gzip
import sys
from pathlib import Path

import pytest
import torch
from ogb.utils import smiles2graph
from torch_geometric.data import Batch, Data

from graphlab.datasets import DatasetBundle, TaskSpec, add_conformers, conformer_positions
from graphlab.models import build_model
from graphlab.testing.equivariance import assert_e_n_equivariant
from graphlab.testing.tiny_bundle import tiny_regression_bundle
from graphlab.utils.metrics import rmse

# aliphatic, aromatic, charged, fused and bridged rings, a stereocentre
SMILES = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
          "C[NH3+]", "C12C3C4C1C5C2C3C45", "O=C(O)[C@@H](N)Cc1ccccc1", "ClC(Cl)(Cl)Cl"]


def _graphs(smiles: bool = True) -> list[Data]:
    graphs = []
    for i, smi in enumerate(SMILES):
        g = smiles2graph(smi)
        data = Data(x=torch.as_tensor(g["node_feat"]), edge_index=torch.as_tensor(g["edge_index"]),
                    edge_attr=torch.as_tensor(g["edge_feat"]),
                    y=torch.tensor([[float(g["num_nodes"]) + 0.1 * i]]), num_nodes=g["num_nodes"])
        if smiles:
            data.smiles = smi
        graphs.append(data)
    return graphs


def molecule_bundle(graphs: list[Data] | None = None, name: str = "mols") -> DatasetBundle:
    """The molecules above with OGB's featuriser and a smooth regression target."""
    graphs = _graphs() if graphs is None else graphs
    split = {"train": torch.arange(5), "valid": torch.arange(5, 7), "test": torch.arange(6, 8)}
    spec = TaskSpec("graph", 9, 1, "mse", "rmse", edge_dim=3, molecular=True)
    return DatasetBundle(name, graphs, [split], spec, "generated", "generated", rmse)


def test_conformers_follow_ogb_atom_order():
    bundle = add_conformers(molecule_bundle(), seed=3)
    again = add_conformers(molecule_bundle(), seed=3)
    other = add_conformers(molecule_bundle(), seed=4)
    assert len(bundle.dataset) == len(SMILES) and bundle.name == "mols"
    for data, same, moved in zip(bundle.dataset, again.dataset, other.dataset):
        assert data.pos.shape == (data.num_nodes, 3) and torch.isfinite(data.pos).all()
        assert data.pos.dtype == torch.float
        assert torch.equal(data.pos, same.pos)  # seeded
        # bonded heavy atoms sit at covalent distances: the rows are OGB's atoms, in its order
        src, dst = data.edge_index
        bonds = (data.pos[src] - data.pos[dst]).norm(dim=-1)
        assert bonds.numel() == 0 or (bonds.min() > 1.0 and bonds.max() < 2.0)
        far = torch.cdist(data.pos, data.pos) + 10 * torch.eye(data.num_nodes)
        assert far.min() > 1.0  # no two atoms on top of each other
        # another seed is another conformer, but the same molecule: equal bond lengths
        moved_bonds = (moved.pos[src] - moved.pos[dst]).norm(dim=-1)
        torch.testing.assert_close(moved_bonds, bonds, atol=0.05, rtol=0)
    # the input bundle is not modified
    assert all("pos" not in d for d in molecule_bundle().dataset)


def test_smiles_from_ogb_mapping_file(tmp_path: Path):
    # OGB datasets keep their SMILES in <root>/mapping/mol.csv.gz, in graph order
    class Mirrored(list):
        root = str(tmp_path)

    with pytest.raises(ValueError, match="mol.csv.gz"):  # a root without the mapping file
        add_conformers(molecule_bundle(Mirrored(_graphs(smiles=False))))
    (tmp_path / "mapping").mkdir()
    with gzip.open(tmp_path / "mapping" / "mol.csv.gz", "wt", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["y", "smiles"])
        writer.writerows([[0, smi] for smi in SMILES])
    bundle = add_conformers(molecule_bundle(Mirrored(_graphs(smiles=False))), seed=1)
    reference = add_conformers(molecule_bundle(), seed=1)
    for a, b in zip(bundle.dataset, reference.dataset):
        assert torch.equal(a.pos, b.pos)


def test_conformer_errors_and_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(ValueError, match="cannot parse"):
        conformer_positions("C1CC", 3)
    with pytest.raises(ValueError, match="3 heavy atoms, the graph has 4"):
        conformer_positions("CCO", 4)
    from rdkit.Chem import AllChem

    # a molecule ETKDG cannot embed (both the seeded and the random-coordinate attempt fail)
    calls = []
    monkeypatch.setattr(AllChem, "EmbedMolecule",
                        lambda mol, params: calls.append(params.useRandomCoords) or -1)
    with pytest.raises(ValueError, match="could not embed"):
        conformer_positions("CCO", 3)
    assert calls == [False, True]  # the random-coordinate retry happened
    with pytest.raises(ValueError, match="could not embed"):
        add_conformers(molecule_bundle(), strict=True)
    cache = tmp_path / "sub" / "conformers.pt"
    with pytest.warns(UserWarning, match="8 of 8 molecules could not be embedded"):
        bundle = add_conformers(molecule_bundle(), cache=cache)
    assert all(float(d.pos.abs().sum()) == 0 for d in bundle.dataset)
    monkeypatch.undo()
    # the cache is read back as is (weights_only), not embedded again
    assert all(float(d.pos.abs().sum()) == 0 for d in add_conformers(molecule_bundle(),
                                                                     cache=cache).dataset)
    assert not list(tmp_path.rglob("*.tmp"))
    # a cache of other molecules, another seed or another format is refused, not reused
    short = molecule_bundle(_graphs()[:3], name="short")
    with pytest.raises(ValueError, match="holds 8 conformers, short has 3 graphs"):
        add_conformers(short, cache=cache)
    with pytest.raises(ValueError, match="another seed"):
        add_conformers(molecule_bundle(), seed=1, cache=cache)
    swapped = _graphs()
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(ValueError, match="other molecules"):
        add_conformers(molecule_bundle(swapped), cache=cache)
    legacy = tmp_path / "legacy.pt"
    torch.save([torch.zeros(3, 3)], legacy)
    with pytest.raises(ValueError, match="not a conformer cache"):
        add_conformers(molecule_bundle(), cache=legacy)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="delete .*garbage.pt to embed again"):
        add_conformers(molecule_bundle(), cache=garbage)
    with pytest.raises(ValueError, match="need SMILES"):
        add_conformers(tiny_regression_bundle())


def test_missing_rdkit_says_how_to_install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "rdkit", None)  # `from rdkit import ...` raises ImportError
    with pytest.raises(ImportError, match=r"graphlab\[rdkit\]"):
        add_conformers(molecule_bundle())
    with pytest.raises(ImportError, match=r"graphlab\[rdkit\]"):
        conformer_positions("CCO", 3)


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


def test_train_egnn_on_conformers(tmp_path: Path):
    from graphlab.train import TrainConfig, train

    bundle = add_conformers(molecule_bundle(), cache=tmp_path / "conformers.pt")
    config = TrainConfig(dataset="mols", model="egnn", epochs=2, seeds=1, batch_size=4,
                         model_kwargs={"hidden_channels": 8, "num_layers": 2},
                         out=str(tmp_path / "run"), progress=False)
    summary = train(config, bundle)["summary"]
    assert summary["num_params"] > 0 and summary["num_runs"] == 1
    assert torch.isfinite(torch.tensor(summary["test_mean"]))
