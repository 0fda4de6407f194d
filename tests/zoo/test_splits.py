"""Zoo splits: partitions of the members, with out-of-distribution test parts."""

from __future__ import annotations

from graphlab.zoo import PRESETS, member_config, zoo_splits


def test_splits_partition_and_ood():
    size = 40
    for preset in PRESETS:
        if preset == "digits-inr":  # one architecture: only the stratified id split (test_inr)
            continue
        sp = zoo_splits(preset, size, 0)
        fixed = preset == "digits-cnn-fixed"  # one architecture: no width / depth split
        assert ({"id", "hparam"} if fixed else {"id", "hparam", "width", "depth"}) <= set(sp)
        assert not fixed or not {"width", "depth"} & set(sp)
        cfgs = [member_config(preset, 0, i) for i in range(size)]
        for s in sp.values():
            assert not set(s["train"]) & set(s["test"])
            assert sorted(s["train"] + s["test"]) == list(range(size))
        if fixed:
            assert {(c["width"], c["depth"]) for c in cfgs} == {(16, 2)}
            continue
        wmax = max(c["width"] for c in cfgs)
        assert all(cfgs[i]["width"] == wmax for i in sp["width"]["test"])
        assert all(cfgs[i]["width"] < wmax for i in sp["width"]["train"])
    fam = zoo_splits("arch-family", size, 0)["family"]
    assert all(member_config("arch-family", 0, i)["arch"] == "resmlp" for i in fam["test"])
