r"""Neuron-permutation symmetries of a network, derived from its traced neural graph.

Hidden neurons can be permuted without changing the function, but not independently:

* element-wise ops, norm layers and residual additions tie the permutations of their inputs and
  outputs (union-find over the traced graph; a ResNet stage becomes one group, as in Git
  Re-Basin's hand-written ``P_bg0``);
* a grouped convolution only allows permuting its groups as blocks (jointly on its input and
  output channels) and channels within a group;
* in multi-head attention the heads permute as blocks; inside a head, query and key dimensions
  permute jointly and value dimensions (with the output projection's columns) independently;
* the input and output neurons (and token ids) are fixed;
* tied weights tie the permutations of every axis they appear on.

A permutation is a tensor ``perm`` over the neural-graph nodes with ``perm[old] = new``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from graphlab.metanets.inverse import graph_to_state_dict
from graphlab.metanets.spec import NetSpec
from graphlab.metanets.views import to_graph

__all__ = ["PermGroup", "PermutationSpec", "permutation_spec", "random_symmetry",
           "permute_graph_nodes", "permute_module", "is_automorphism", "ODD_ACTS",
           "sign_flip_nodes", "flip_graph_signs"]


@dataclass
class PermGroup:
    """Node sets that are permuted together, all with the same relative permutation.

    Args:
        name: ``"P0"``, ``"P1"``, ...
        sets: the node-set ids (in ``graph.net.sets``).
        starts: first node id of each set.
        size: neurons per set.
        fixed: the group only admits the identity (inputs, outputs, tokens, conflicts).
        num_blocks: ``1`` for a free permutation; ``G`` when neurons permute as ``G`` contiguous
            blocks (attention heads, conv groups) plus any permutation inside each block.
        family: groups with the same family share the block permutation (Q/K, V and the head
            nodes of one attention layer; the input and output channels of a grouped conv).
        params: ``(parameter name, axis)`` pairs permuted by this group (Linear, Conv and
            Embedding weights; axis index ``i`` maps to neuron ``i // r``, ``r = axis / size``).
    """

    name: str
    sets: list[int]
    starts: list[int]
    size: int
    fixed: bool = False
    num_blocks: int = 1
    family: str | None = None
    kinds: list[str] = field(default_factory=list)
    params: list[tuple[str, int]] = field(default_factory=list)

    @property
    def node_ids(self) -> Tensor:
        """``[len(sets), size]`` node ids of the group."""
        return torch.tensor(self.starts).unsqueeze(1) + torch.arange(self.size)


class PermutationSpec:
    """The neuron-permutation group of a network (see :func:`permutation_spec`)."""

    def __init__(self, groups: list[PermGroup], num_nodes: int) -> None:
        self.groups = groups
        self.num_nodes = num_nodes

    def __repr__(self) -> str:
        free = sum(1 for g in self.groups if not g.fixed)
        return f"PermutationSpec(groups={len(self.groups)}, permutable={free}, " \
               f"nodes={self.num_nodes})"

    def identity(self) -> Tensor:
        return torch.arange(self.num_nodes)

    def sample(self, seed: int = 0) -> Tensor:
        """A uniformly random element of the group, as ``perm[old] = new`` over the nodes."""
        gen = torch.Generator().manual_seed(seed)
        fixed_family = {g.family for g in self.groups if g.fixed and g.family}
        block_perm: dict[str, Tensor] = {}
        perm = self.identity()
        for g in self.groups:
            if g.fixed:
                continue
            if g.num_blocks > 1:
                nb, b = g.num_blocks, g.size // g.num_blocks
                if g.family not in block_perm:
                    block_perm[g.family] = torch.arange(nb) if g.family in fixed_family \
                        else torch.randperm(nb, generator=gen)
                pi = block_perm[g.family]
                within = torch.stack([torch.randperm(b, generator=gen) for _ in range(nb)])
                rel = (pi.unsqueeze(1) * b + within).reshape(-1)
            else:
                rel = torch.randperm(g.size, generator=gen)
            for s in g.starts:
                perm[s:s + g.size] = s + rel
        return perm

    def contains(self, perm: Tensor) -> bool:
        """Whether ``perm`` (``perm[old] = new``) is a symmetry of the network."""
        perm = torch.as_tensor(perm)
        if perm.shape != (self.num_nodes,) or perm.dtype != torch.long or not torch.equal(
                perm.sort().values, self.identity()):
            return False
        block_perm: dict[str, Tensor] = {}
        for g in self.groups:
            rel = perm[g.node_ids] - torch.tensor(g.starts).unsqueeze(1)
            if bool((rel < 0).any() | (rel >= g.size).any()):
                return False  # a neuron left its set
            if not bool((rel == rel[:1]).all()):
                return False  # tied sets permuted differently
            rel = rel[0]
            if g.fixed:
                if not torch.equal(rel, torch.arange(g.size)):
                    return False
                continue
            if g.num_blocks > 1:
                blk = (rel // (g.size // g.num_blocks)).view(g.num_blocks, -1)
                if not bool((blk == blk[:, :1]).all()):
                    return False  # a block was split
                pi = blk[:, 0]
                if g.family in block_perm and not torch.equal(block_perm[g.family], pi):
                    return False  # e.g. queries and values of different heads paired
                block_perm[g.family] = pi
        for g in self.groups:  # a family with a fixed member must keep its blocks in place
            if g.fixed and g.family in block_perm and not torch.equal(
                    block_perm[g.family], torch.arange(len(block_perm[g.family]))):
                return False
        return True


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _spec_from_net(net: NetSpec) -> PermutationSpec:
    n = len(net.sets)
    uf = _UnionFind(n)
    for a, b in net.ties:
        uf.union(a, b)
    for alias, owner in net.aliases.items():  # tied weights: every axis ties its node sets
        for (ax_a, sa), (ax_b, sb) in zip(net.param_axes.get(alias, []),
                                          net.param_axes.get(owner, [])):
            if ax_a == ax_b:
                uf.union(sa, sb)
    fixed = {uf.find(s) for s in net.fixed}
    fam = _UnionFind(len(net.blocked))
    blocks: dict[int, tuple[int, int]] = {}  # class root -> (num_blocks, blocked index)
    first: dict[str, int] = {}
    for i, (sets, nb, key) in enumerate(net.blocked):
        fam.union(first.setdefault(key, i), i)  # one layer's entries share a block permutation
        for s in sets:
            r = uf.find(s)
            if r in blocks and blocks[r][0] != nb:
                fixed.add(r)  # two incompatible block structures: be conservative
            elif r in blocks:
                fam.union(blocks[r][1], i)
            else:
                blocks[r] = (nb, i)
    axes: dict[int, list[tuple[str, int]]] = {}
    for name, lst in net.param_axes.items():
        if name in net.aliases:
            continue
        for ax, s in lst:
            axes.setdefault(uf.find(s), []).append((name, ax))
    members: dict[int, list[int]] = {}
    for s in range(n):
        members.setdefault(uf.find(s), []).append(s)
    groups = []
    for i, (root, sets) in enumerate(sorted(members.items())):
        nb, fam_id = blocks.get(root, (1, None))
        groups.append(PermGroup(
            name=f"P{i}", sets=sets, starts=[net.sets[s].start for s in sets],
            size=net.sets[sets[0]].size, fixed=root in fixed, num_blocks=nb,
            family=None if fam_id is None else f"F{fam.find(fam_id)}",
            kinds=[net.sets[s].kind for s in sets], params=axes.get(root, [])))
    return PermutationSpec(groups, net.num_neural_nodes)


def _neural_graph(module_or_graph: nn.Module | Data, example_input: Tensor | None) -> Data:
    if isinstance(module_or_graph, Data):
        net = getattr(module_or_graph, "net", None)
        if not isinstance(net, NetSpec) or net.view != "neural":
            raise ValueError("expected a graph from to_graph(..., view='neural')")
        return module_or_graph
    return to_graph(module_or_graph, example_input, view="neural")


def permutation_spec(module: nn.Module | Data, example_input: Tensor | None = None
                     ) -> PermutationSpec:
    """The neuron-permutation symmetry group of ``module`` (or of a neural-view graph).

    Groups are derived from the traced graph by union-find (see the module docstring). Node ids
    refer to ``to_graph(module, example_input, view="neural")``.
    """
    return _spec_from_net(_neural_graph(module, example_input).net)


def permute_graph_nodes(graph: Data, perm: Tensor) -> Data:
    """Relabel a neural-view graph's nodes by ``perm[old] = new`` and restore the canonical edge
    order (by edge block, then destination, then source), so that :func:`graph_to_state_dict`
    reads the permuted weights."""
    net = graph.net
    perm = torch.as_tensor(perm)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    out = copy.copy(graph)
    for key in ("x", "node_type", "layer", "io_id", "node_act"):
        out[key] = graph[key][inv]
    ei = perm[graph.edge_index]
    n = graph.num_nodes
    key = (graph.edge_layer * n + ei[1]) * n + ei[0]
    order = torch.argsort(key, stable=True)
    out.edge_index = ei[:, order]
    for k in ("edge_attr", "edge_type", "edge_layer"):
        out[k] = graph[k][order]
    # the weights are read back at canonical positions: every weighted block must still connect
    # the same (src, dst) pairs
    weighted = torch.tensor([b.values is not None for b in net.blocks], dtype=torch.bool)
    mask = weighted[graph.edge_layer] if weighted.numel() else torch.zeros(0, dtype=torch.bool)
    if not torch.equal(out.edge_index[:, mask], graph.edge_index[:, mask]):
        raise ValueError("the permutation moves neurons across layers or conv groups; it cannot "
                         "be written back as weights")
    return out


def permute_module(module: nn.Module, perm: Tensor, example_input: Tensor | None = None
                   ) -> nn.Module:
    """A copy of ``module`` with its neurons relabelled by ``perm`` (any permutation, symmetry or
    not: used for negative controls)."""
    graph = to_graph(module, example_input, view="neural")
    new = copy.deepcopy(module)
    new.load_state_dict(graph_to_state_dict(permute_graph_nodes(graph, perm), module))
    return new


#: activations with f(-z) = -f(z): flipping the sign of such a hidden neuron's incoming weights
#: and bias and of its outgoing weights leaves the network's function unchanged
ODD_ACTS = ("sine", "tanh")


def sign_flip_nodes(graph: Data) -> Tensor:
    """Mask of the neural-view nodes whose sign can be flipped: hidden neurons / channels of a free
    (non-fixed) permutation group whose every node set ends in an odd activation
    (:data:`ODD_ACTS`) and carries no norm parameters (ScaleGMN's sign symmetry, Kalogeropoulos
    et al., NeurIPS 2024)."""
    spec = _spec_from_net(graph.net)
    mask = torch.zeros(graph.num_nodes, dtype=torch.bool)
    for g in spec.groups:
        sets = [graph.net.sets[s] for s in g.sets]
        if g.fixed or any(st.act not in ODD_ACTS or st.kind not in ("neuron", "channel")
                          for st in sets):
            continue
        mask[g.node_ids.reshape(-1)] = True
    return mask


def flip_graph_signs(graph: Data, sign: Tensor) -> Data:
    """A copy of a neural-view graph with node ``i`` negated where ``sign[i] = -1``: every edge
    scaled by ``sign[src] * sign[dst]`` and the bias column of ``x`` by ``sign``. Only a symmetry
    where ``sign`` is ``-1`` on :func:`sign_flip_nodes` alone."""
    sign = torch.as_tensor(sign, dtype=graph.edge_attr.dtype)
    out = copy.copy(graph)
    src, dst = graph.edge_index
    out.edge_attr = graph.edge_attr * (sign[src] * sign[dst]).unsqueeze(-1)
    x = graph.x.clone()
    x[:, 0] = x[:, 0] * sign
    out.x = x
    return out


def random_symmetry(module: nn.Module, seed: int = 0, example_input: Tensor | None = None,
                    signs: bool = False) -> nn.Module:
    """A copy of ``module`` with a random element of its permutation group applied: it computes
    the same function (up to floating-point rounding) with permuted weights.

    With ``signs=True`` the hidden neurons of :func:`sign_flip_nodes` (odd activations such as
    SIREN's sine) also have their signs flipped at random (a fair coin each), the sign symmetry
    the INR-classification papers augment with."""
    graph = to_graph(module, example_input, view="neural")
    perm = _spec_from_net(graph.net).sample(seed)
    if signs:
        gen = torch.Generator().manual_seed(seed + 1)
        coin = torch.randint(0, 2, (graph.num_nodes,), generator=gen) * 2 - 1
        graph = flip_graph_signs(graph, torch.where(sign_flip_nodes(graph), coin, 1))
    new = copy.deepcopy(module)
    new.load_state_dict(graph_to_state_dict(permute_graph_nodes(graph, perm), module))
    return new


def is_automorphism(graph: Data, perm: Tensor) -> bool:
    """Whether ``perm`` maps the weight-free structure of ``graph`` onto itself: node types,
    layers, input/output indices and activations, and the typed edge multiset (per block).

    Every element of :func:`permutation_spec` is one; permuting inputs, outputs or dimensions
    across attention heads is not.
    """
    perm = torch.as_tensor(perm)
    for key in ("node_type", "layer", "io_id", "node_act"):
        if not torch.equal(graph[key][perm], graph[key]):
            return False
    n = graph.num_nodes
    ei = graph.edge_index

    def keys(e: Tensor) -> Tensor:
        return ((graph.edge_layer * n + e[1]) * n + e[0]).sort().values

    return torch.equal(keys(perm[ei]), keys(ei))
