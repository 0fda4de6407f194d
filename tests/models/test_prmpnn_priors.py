"""PR-MPNN's multi-prior ensemble and the authors' intra- / inter-graph head."""

import pytest
import torch
from torch_geometric.data import Batch

from graphlab.models import PRMPNN
from graphlab.rewiring import EdgeCandidates
from graphlab.testing import CHECKS, FEATURE_MUTATIONS, LayerCase, conformance_params
from graphlab.testing.graphs import random_graph

#: the authors' TU configuration of the head and the ensemble (proteins/edge_candidate)
PAPER_HEAD = {"num_priors": 3, "intra_layers": 3, "inter_layers": 1, "average": "logits",
              "last_bias": False, "add_weight": "marginal"}


def _model(**kw) -> PRMPNN:
    kw = {"k_add": 3, "k_delete": 2, "num_samples": 2, "num_candidates": None,
          "heuristic": "all", **kw}
    return PRMPNN(8, 16, 3, num_layers=2, upstream_layers=1, **kw)


def _forward(m, b):
    return m(b.x, b.edge_index, batch=b.batch, num_graphs=b.num_graphs)


def _batch(sizes=(6, 9, 7)) -> Batch:
    return Batch.from_data_list([EdgeCandidates(10, "distance")(
        random_graph(n, in_channels=8, seed=n)) for n in sizes])


_SLOW = "whole-model compile takes ~50 s (see tests/models/test_prmpnn.py)"
CASES = [
    # eval mode with the deterministic top-k: the expectation path, one prediction per graph
    LayerCase(name="prmpnn-priors", make_module=lambda: _model(**PAPER_HEAD),
              forward=_forward, levels=("graph",),
              skip={"compile": _SLOW, "recompiles": _SLOW}, bad_inputs=FEATURE_MUTATIONS),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


def test_defaults_are_one_prior_and_the_two_layer_head():
    model = _model()
    assert model.num_priors == 1 and model.intra is None and model.average == "readout"
    assert [lin.bias is not None for lin in model.head.lins] == [True, True]
    assert model.rewirer.scorer.add_head.lins[-1].out_channels == 1
    assert not any("intra" in name for name, _ in model.named_parameters())


def test_identical_priors_give_the_one_prior_prediction():
    """Three priors whose logits all equal one prior's rewire each graph three times the same
    way (eval: deterministic top-k), so the ensemble predicts what the single prior does."""
    torch.manual_seed(0)
    one = _model(intra_layers=2, inter_layers=2, average="logits").double().eval()
    three = _model(num_priors=3, intra_layers=2, inter_layers=2,
                   average="logits").double().eval()
    state = one.state_dict()
    for key, value in three.state_dict().items():
        src = state[key]
        if value.shape != src.shape:  # the scorers' last layers: one column (bias) per prior
            src = src.expand(3, *src.shape[1:]) if src.dim() else src
        value.copy_(src)
    b = _batch()
    b.x = b.x.double()
    with torch.no_grad():
        torch.testing.assert_close(three.forward_data(b), one.forward_data(b))


def test_priors_run_as_one_batch_with_priors_times_samples_copies():
    model = _model(**PAPER_HEAD, num_eval_samples=4).double()
    b = _batch()
    b.x = b.x.double()
    seen = {}

    def hook(module, args, out) -> None:
        seen["nodes"] = args[0].size(0)

    model.convs[0].register_forward_hook(hook)
    out = model.train().forward_data(b, torch.Generator().manual_seed(0))
    assert out.shape == (3, 3) and seen["nodes"] == 3 * 2 * b.num_nodes
    seen.clear()
    with torch.no_grad():
        out = model.eval().forward_data(b, torch.Generator().manual_seed(0))
    assert out.shape == (3, 3) and seen["nodes"] == 3 * 4 * b.num_nodes


def test_gradients_reach_every_prior_of_the_upstream():
    model = _model(**PAPER_HEAD).double().train()
    b = _batch()
    b.x = b.x.double()
    model.forward_data(b, torch.Generator().manual_seed(0)).square().sum().backward()
    for head in (model.rewirer.scorer.add_head, model.rewirer.scorer.delete_head):
        grad = head.lins[-1].weight.grad               # [num_priors, hidden]
        assert grad.shape[0] == 3 and (grad.abs().sum(1) > 0).all()


def test_logit_average_is_the_mean_of_per_copy_predictions():
    """With a linear inter-graph MLP, averaging readouts or logits is the same prediction;
    with a nonlinear one they differ (the logit average is the authors' ensemble)."""
    b = _batch()
    b.x = b.x.double()
    preds = {}
    for inter in (1, 2):
        for average in ("readout", "logits"):
            torch.manual_seed(0)
            m = _model(num_priors=2, intra_layers=2, inter_layers=inter,
                       average=average, num_eval_samples=3).double().eval()
            with torch.no_grad():
                preds[inter, average] = m.forward_data(b, torch.Generator().manual_seed(1))
    torch.testing.assert_close(preds[1, "readout"], preds[1, "logits"])
    assert not torch.allclose(preds[2, "readout"], preds[2, "logits"])


def test_paper_head_layers():
    model = _model(**PAPER_HEAD)
    assert [(lin.in_channels, lin.out_channels, lin.bias is not None)
            for lin in model.intra.lins] == [(16, 16, True), (16, 16, True), (16, 16, False)]
    assert [(lin.in_channels, lin.out_channels, lin.bias is not None)
            for lin in model.head.lins] == [(16, 3, False)]
    assert "num_priors=3" in repr(model) and "average='logits'" in repr(model)


@pytest.mark.parametrize("kw,match", [
    ({"num_priors": 0}, "num_priors"), ({"intra_layers": -1}, "intra_layers"),
    ({"inter_layers": 0}, "inter_layers"), ({"average": "median"}, "average"),
    ({"add_weight": "logits"}, "add_weight"),
])
def test_bad_options_are_value_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        _model(**kw)
