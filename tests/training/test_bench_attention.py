"""bench_attention: the attention of a cache written in place against one appended to a copy."""

from __future__ import annotations

import numpy as np
import pytest

from fillpoint.training.bench_attention import attention_cost, check_in_place, main, tree_bias


def test_a_tree_bias_shows_each_node_the_cache_and_its_ancestors_only() -> None:
    bias = tree_bias(2, [-1, 0, 0, 2])[0, 0]
    sees = np.isfinite(bias)
    assert sees[:, :2].all()  # the cache
    assert sees[:, 2:].tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [True, False, True, False],
        [True, False, True, True],
    ]


def test_the_in_place_graph_attends_under_the_tree_and_writes_the_cache() -> None:
    assert check_in_place(heads=2, head_dim=8, cached=5) < 1e-5


def test_both_layouts_are_timed(capsys: pytest.CaptureFixture[str]) -> None:
    copy_ms, in_place_ms = attention_cost(1, 2, 8, cached=6, new=2, repeats=10)
    assert copy_ms > 0 and in_place_ms > 0
    assert main(["--layers", "1", "--heads", "2", "--head-dim", "8", "--cached", "4"]) == 0
    assert "| 4 | 8 |" in capsys.readouterr().out
