"""The NumPy CPU path of ``tree_plan`` builds exactly the torch path's plan."""

import pytest
import torch

from graphlab.aggr import _tree_plan_cpu, lcm  # noqa: PLC2701 - unit test of the CPU path
from graphlab.aggr.lcm import TreePlan, tree_plan


def power_law_index(num_nodes: int, num_edges: int, max_degree: int, seed: int = 0) -> torch.Tensor:
    """Sorted index with Pareto(1.5)-tailed degrees (as ``benchmarks.aggr_speed``), one node of
    ``max_degree``; many nodes get degree 0."""
    gen = torch.Generator().manual_seed(seed)
    deg = torch.rand(num_nodes, generator=gen).pow(-1 / 1.5).floor().clamp(max=max_degree)
    deg = (deg * num_edges / deg.sum()).round().long().clamp(max=max_degree)
    deg[0] = max_degree
    return torch.repeat_interleave(torch.arange(num_nodes), deg)


def assert_same_plan(a: TreePlan, b: TreePlan) -> None:
    assert len(a.left) == len(b.left) == len(a.right) == len(b.right) == len(a.offsets)
    for x, y in zip([*a.left, *a.right], [*b.left, *b.right]):
        assert x.dtype == y.dtype == torch.long and x.device == y.device and torch.equal(x, y)
    assert a.offsets == b.offsets and all(type(o) is int for o in b.offsets)
    assert a.num_rows == b.num_rows and type(b.num_rows) is int
    for name in ("root", "empty", "steps", "source"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.device == y.device, name
        assert torch.equal(x, y), name
    assert b.empty.dtype == torch.bool


def check(index: torch.Tensor, dim_size: int, key: torch.Tensor | None = None) -> None:
    expected = lcm._tree_plan_torch(index, dim_size, key)
    assert_same_plan(expected, _tree_plan_cpu.tree_plan_cpu(index, dim_size, key))
    # the gradient buffer interleaves each pair's operands, pair g (of all levels) at
    # dim_size + 2 g: a block of pairs writes its operands' gradients as one [2h, C] slice
    if expected.left:
        pos = torch.arange(dim_size, dim_size + 2 * expected.num_rows - 2 * index.numel(), 2)
        assert torch.equal(expected.source[torch.cat(expected.left)], pos)
        assert torch.equal(expected.source[torch.cat(expected.right)], pos + 1)


def keys(num: int, gen: torch.Generator) -> list[torch.Tensor | None]:
    return [None,
            torch.randn(num, generator=gen),
            torch.randint(-2, 3, (num,), generator=gen).float(),  # ties, and -0.0 against 0.0
            torch.randn(num, generator=gen, dtype=torch.float64),
            torch.randint(0, 4, (num,), generator=gen, dtype=torch.float64)]


@pytest.mark.parametrize("seed", range(6))
def test_random_degrees_match_the_torch_path(seed):
    gen = torch.Generator().manual_seed(seed)
    num = int(torch.randint(1, 400, (1,), generator=gen))
    degrees = torch.rand(num, generator=gen).pow(-1 / 1.3).floor().long().clamp(max=300) - 1
    degrees = degrees.clamp(min=0)  # many 0, 1, 2, 3
    degrees[torch.randint(0, num, (1,), generator=gen)] = (200, 2000)[seed % 2]
    index = torch.repeat_interleave(torch.arange(num), degrees)
    extra = seed % 3  # trailing empty segments
    shuffled = index[torch.randperm(index.numel(), generator=gen)]
    for idx in (index, shuffled):
        for key in keys(idx.numel(), gen):
            check(idx, num + extra, key)


def test_power_law_index_matches_the_torch_path():
    index = power_law_index(3_000, 7_500, 200)
    gen = torch.Generator().manual_seed(1)
    for key in (None, torch.rand(index.numel(), generator=gen)):
        check(index, 3_000, key)
        check(index[torch.randperm(index.numel(), generator=gen)], 3_000, key)


@pytest.mark.parametrize("degrees", [[], [0], [0, 0, 0], [1], [2], [3], [2000], [1, 1, 1],
                                     [0, 1, 0, 1], [2, 2, 2], [0, 3, 0, 2, 1, 0],
                                     [5, 5, 3, 3, 1, 1, 0, 0], [4, 1, 4, 1, 4]])
def test_edge_cases_match_the_torch_path(degrees):
    degrees = torch.tensor(degrees, dtype=torch.long)
    index = torch.repeat_interleave(torch.arange(degrees.numel()), degrees)
    gen = torch.Generator().manual_seed(0)
    for key in keys(index.numel(), gen):
        check(index, degrees.numel(), key)
        check(index.flip(0), degrees.numel(), key)


def test_other_key_dtypes_and_strided_inputs_match():
    gen = torch.Generator().manual_seed(3)
    index = torch.randint(0, 50, (2, 400), generator=gen)[1]  # a row of an edge index
    strided = torch.stack([index, index], 1)[:, 0]  # not contiguous
    key = torch.randn(400, generator=gen, requires_grad=True)
    for k in (key, key.half(), key.bfloat16(), torch.randint(0, 5, (400,), generator=gen),
              torch.randn(800, generator=gen)[::2]):
        check(index, 50, k)
        check(strided, 52, k)


def test_empty_inputs_match():
    for dim_size in (0, 1, 7):
        check(torch.zeros(0, dtype=torch.long), dim_size)
        check(torch.zeros(0, dtype=torch.long), dim_size, torch.zeros(0))


def test_tree_plan_takes_the_cpu_path(monkeypatch):
    calls = []

    def spy(*args):
        calls.append(args)
        return cpu_path(*args)

    def torch_path(*args):
        raise AssertionError("the torch path ran on CPU tensors")

    cpu_path = _tree_plan_cpu.tree_plan_cpu
    monkeypatch.setattr(_tree_plan_cpu, "tree_plan_cpu", spy)
    monkeypatch.setattr(lcm, "_tree_plan_torch", torch_path)
    index = power_law_index(200, 600, 40)
    key = torch.rand(index.numel())
    plan = tree_plan(index, 200, key)
    assert len(calls) == 1
    monkeypatch.undo()
    assert_same_plan(lcm._tree_plan_torch(index, 200, key), plan)
