"""Zoo presets: member configurations are pure, varied functions of (preset, seed, index)."""

from __future__ import annotations

import json

import pytest

from graphlab.zoo import PRESETS, member_config


def test_member_config_deterministic_and_varied():
    a = [member_config("digits-mlp", 0, i) for i in range(20)]
    b = [member_config("digits-mlp", 0, i) for i in range(20)]
    assert a == b
    assert len({json.dumps(c, sort_keys=True) for c in a}) == 20
    assert member_config("digits-mlp", 1, 0) != a[0]
    for name in PRESETS:
        assert "seed" in member_config(name, 0, 0)
    with pytest.raises(ValueError, match="unknown preset"):
        member_config("nope", 0, 0)
