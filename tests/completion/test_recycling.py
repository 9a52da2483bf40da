"""Token Recycling: the draft tree, the adjacency table, and the same lines as greedy decoding.

Greedy decoding one token per call is the reference. With an fp32 graph the recycled lines
must be the same text with the same mean log-prob; with int8 (per-row activation scales) the
same text, which rounding could only change at an exact near-tie of two tokens.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fillpoint.completion.decoding import PrefixCache, Prompt, Vocab, fim_prompt, greedy_line, heal
from fillpoint.completion.recycling import AdjacencyTable, Recycler, document_draft, tree_shape
from fillpoint.completion.runtime import OnnxDecoder

STDLIB = Path(sysconfig.get_paths()["stdlib"])

SNIPPETS = [
    "import os\nimport sys\n\n\ndef main(argv):\n    for arg in argv:\n        print(",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n",
    "def f(x):\n    return f(f(f(f(f(",  # greedy decoding of a loop stops where it repeats
    "with open(path) as fh:\n    for line in fh:\n        line = line.strip()\n        if ",
    "result = {}\nfor key, value in items.items():\n    result[key] = value\n",
    "    def test_push(self):\n        s = Stack()\n        s.push(1)\n        self.assertEq",
    "x = [i * i for i in range(10)]\ny = ",
    "try:\n    import json\nexcept ImportError:\n    json = None\n\nif json is not None:\n    ",
    "import re\n\nPATTERN = re.compile(r'",
    "def add(a, b):\n    '''Add two numbers.'''\n    return a",
]


def prompts(lm: OnnxDecoder) -> list[Prompt]:
    """Healed prompts, some with a fill-in-the-middle suffix, over the snippets' cut points."""
    out = []
    for text in SNIPPETS:
        for cut in sorted({len(text), len(text) * 2 // 3, len(text) // 2}):
            prompt = heal(lm, text[:cut], "healing")
            out.append(prompt)
            out.append(fim_prompt(lm, prompt, text[cut:] + "\n\nprint('done')\n"))
    return out


def test_tree_shape_is_breadth_first_and_deepest_along_the_likely_ranks() -> None:
    shape = tree_shape(nodes=24, depth=4, k=8)
    assert shape.size == 24 and shape.parent[0] == -1 and shape.depth.max() <= 4
    assert list(shape.depth) == sorted(shape.depth)  # breadth-first: depths never go back
    for i in range(1, shape.size):
        assert shape.parent[i] < i and shape.depth[i] == shape.depth[shape.parent[i]] + 1
        ancestors = {i}
        j = shape.parent[i]
        while j != -1:
            ancestors.add(j)
            j = shape.parent[j]
        assert set(np.flatnonzero(shape.ancestors[i])) == ancestors
    chain = [0]  # the rank-0 chain reaches the full depth
    while kids := [i for i in range(24) if shape.parent[i] == chain[-1] and shape.rank[i] == 0]:
        chain.append(kids[0])
    assert len(chain) == 5
    # siblings come in rank order, so a prefix of the nodes is a smaller tree of the same kind
    for i in range(1, shape.size):
        if shape.rank[i] > 0:
            assert any(
                shape.parent[j] == shape.parent[i] and shape.rank[j] == shape.rank[i] - 1
                for j in range(i)
            )


def test_the_table_keeps_the_top_k_in_order_and_drafts_through_it() -> None:
    table = AdjacencyTable(n_vocab=10, k=3)
    logits = np.array([[0, 5, 1, 9, 2, 0, 0, 7, 0, 0], [9, 0, 0, 0, 0, 0, 0, 0, 8, 1.0]])
    table.update(np.array([4, 3]), logits)
    assert table.next[4].tolist() == [3, 7, 1] and table.next[3].tolist() == [0, 8, 9]
    shape = tree_shape(nodes=5, depth=2, k=3)
    tokens = table.draft(4, shape, shape.size)
    assert tokens[0] == 4
    for i in range(1, shape.size):
        assert tokens[i] == table.next[tokens[shape.parent[i]], shape.rank[i]]


@pytest.fixture(scope="module")
def fp32(tiny_fp32_model_dir: Path) -> OnnxDecoder:
    return OnnxDecoder(tiny_fp32_model_dir, threads=1)


@pytest.fixture(scope="module")
def int8(tiny_model_dir: Path) -> OnnxDecoder:
    return OnnxDecoder(tiny_model_dir, threads=1)


def test_document_drafts_follow_the_longest_earlier_match_of_the_last_tokens() -> None:
    ids = np.asarray([7, 1, 2, 3, 8, 2, 4, 7, 1, 2])
    # (7, 1, 2) occurred at the start; the later lone 2 (followed by 4) matches less of it
    assert document_draft(ids, 3).tolist() == [3, 8, 2]
    assert document_draft(ids, 3, longest=1).tolist() == [4, 7, 1]  # the latest 2 alone
    assert document_draft(ids, 20).tolist() == [3, 8, 2, 4, 7, 1, 2]  # up to the end
    assert document_draft(np.asarray([1, 2, 3]), 4).tolist() == []  # 3 is new
    assert document_draft(np.asarray([5, 5]), 2).tolist() == [5]
    assert document_draft(ids, 0).tolist() == [] and document_draft(ids[:1], 3).tolist() == []


def brute_force_draft(ids: list[int], length: int, longest: int) -> list[int]:
    """`document_draft` by its definition: over match lengths from the longest, the latest
    earlier end j whose last k tokens equal the last k of `ids`."""
    n = len(ids)
    for k in range(min(longest, n - 1), 0, -1):
        ends = [j for j in range(k - 1, n - 1) if ids[j - k + 1 : j + 1] == ids[n - k :]]
        if ends:
            return ids[ends[-1] + 1 : ends[-1] + 1 + length] if length > 0 else []
    return []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 3), max_size=30),
    st.integers(0, 6),
    st.integers(1, 5),
)
def test_document_drafts_equal_their_definition(ids: list[int], length: int, longest: int) -> None:
    got = document_draft(np.asarray(ids, np.int64), length, longest).tolist()
    assert got == brute_force_draft(ids, length, longest)


@pytest.mark.slow
@pytest.mark.parametrize("nodes,depth,chain", [(16, 5, 0), (64, 6, 0), (1, 0, 0), (2, 1, 6)])
def test_fp32_lines_equal_greedy_decoding(
    fp32: OnnxDecoder, nodes: int, depth: int, chain: int
) -> None:
    vocab, recycler = Vocab(fp32), Recycler(fp32, nodes=nodes, depth=depth, chain=chain)
    for _ in range(2):  # the second round drafts from a table that the first one filled
        for prompt in prompts(fp32):
            for max_tokens in (48, 3, 1):
                want = greedy_line(fp32, vocab, prompt, max_tokens)
                got = recycler.greedy_line(vocab, prompt, max_tokens)
                assert got[0] == want[0], prompt
                assert got[1] == pytest.approx(want[1], abs=1e-5)
    assert nodes == 1 or recycler.tokens > recycler.calls  # some drafts were accepted


@pytest.mark.slow
@pytest.mark.parametrize("chain", [0, 6])
def test_int8_lines_equal_greedy_decoding_with_a_prefix_cache(
    int8: OnnxDecoder, chain: int
) -> None:
    vocab, recycler = Vocab(int8), Recycler(int8, chain=chain)
    cache = PrefixCache(int8)
    for prompt in prompts(int8) * 2:
        want = greedy_line(int8, vocab, prompt, 48, None, cache)
        assert recycler.greedy_line(vocab, prompt, 48, None, cache)[0] == want[0], prompt


def test_the_table_learns_the_next_tokens_of_the_prompts_a_watched_cache_runs(
    fp32: OnnxDecoder,
) -> None:
    vocab, recycler = Vocab(fp32), Recycler(fp32, nodes=4, depth=3)
    assert recycler.table is not None
    cache = PrefixCache(fp32)
    cache.watch(recycler.table.update)
    prompt = prompts(fp32)[0]
    logp, _ = cache.prefill(list(prompt.ids))
    last = prompt.ids[-1]
    assert recycler.table.next[last, 0] == int(np.argmax(logp[0]))
    first = prompt.ids[0]  # only ever followed by the prompt's second token here
    if first not in prompt.ids[1:]:
        fresh, _ = fp32.run(np.asarray([prompt.ids[:1]]), fp32.empty_past(1))
        assert recycler.table.next[first, 0] == int(np.argmax(fresh[0, 0]))
    want = greedy_line(fp32, vocab, prompt, 48, None, cache)
    assert recycler.greedy_line(vocab, prompt, 48, None, cache)[0] == want[0]


@pytest.mark.slow
def test_document_drafts_are_accepted_where_the_line_repeats_the_file(fp32: OnnxDecoder) -> None:
    vocab = Vocab(fp32)
    text = "".join(f"    self.field_{i} = field_{i}\n" for i in range(6)) + "    self.fie"
    prompt = heal(fp32, text, "healing")
    want = greedy_line(fp32, vocab, prompt)
    plain, lookup = Recycler(fp32, nodes=1, depth=0), Recycler(fp32, nodes=1, depth=0, chain=6)
    for recycler in (plain, lookup):
        assert recycler.greedy_line(vocab, prompt)[0] == want[0]
    assert plain.calls == plain.tokens  # one token per call without drafts (prefill included)
    assert lookup.calls < lookup.tokens


@pytest.mark.slow
def test_the_line_decoded_last_drafts_the_next(fp32: OnnxDecoder) -> None:
    vocab, first_calls, again_calls = Vocab(fp32), 0, 0
    for prompt in prompts(fp32):
        recycler = Recycler(fp32, nodes=1, depth=0, chain=4)
        want = recycler.greedy_line(vocab, prompt)
        first = recycler.calls
        again = recycler.greedy_line(vocab, prompt)  # the same line, now also its last line
        first_calls, again_calls = first_calls + first, again_calls + recycler.calls - first
        assert again[0] == want[0] and again[1] == pytest.approx(want[1], abs=1e-5)
    assert again_calls < first_calls


@pytest.mark.slow
def test_a_prompt_at_the_end_of_the_context_stays_inside_it(fp32: OnnxDecoder) -> None:
    vocab, recycler = Vocab(fp32), Recycler(fp32, nodes=64, depth=6)
    long = "\n".join(f"value_{i} = compute(value_{i - 1}, {i})" for i in range(1, 400))
    prompt = heal(fp32, long + "\nvalue_400 = ", "healing")
    assert len(prompt.ids) > fp32.block_size
    for max_tokens in (48, 5):
        assert (
            recycler.greedy_line(vocab, prompt, max_tokens)[0]
            == (greedy_line(fp32, vocab, prompt, max_tokens)[0])
        )


# Nats between the two likeliest tokens within which the int8 graph run on several tokens
# at once may choose differently from the one-token call. On some prompts the shipped graph
# gives the first token of a several-token call a row up to 0.14 nats (largest log-prob
# difference) away from the one-token call's on the same cache; alone it is the same to the
# last bit, and on other prompts the several-token call is too. Seen at the choice: 0.009
# with earlier weights, 0.135 with the current ones ("fix" against "expand" after
# `...dings = ` in textwrap.py). Exact identity stays checked on the tiny model.
NEAR_TIE = 0.2


def _closest_call(lm: OnnxDecoder, vocab: Vocab, prompt: Prompt) -> float:
    """The smallest gap between the two likeliest next tokens along the greedy line, read
    from the rows `greedy_line` itself decodes."""
    gaps: list[float] = []
    step = lm.step

    def recording(ids: np.ndarray, past: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logp, present = step(ids, past)
        top = np.sort(logp[0])[-2:]
        gaps.append(float(top[1] - top[0]))
        return logp, present

    lm.step = recording  # type: ignore[method-assign]
    try:
        greedy_line(lm, vocab, prompt)
    finally:
        del lm.step  # the class's method again
    return min(gaps)


@pytest.mark.slow
def test_the_release_model_recycles_to_the_same_lines(release_model_dir: Path) -> None:
    lm = OnnxDecoder(release_model_dir)
    vocab, recycler = Vocab(lm), Recycler(lm)
    total, differ = 0, []
    # Fixed texts (not this repository's own files, which change). The int8 graph run on
    # several tokens at once can differ in the last bits from the one-token call, so a line
    # may differ only where greedy decoding itself met a near-tie.
    for path in ("textwrap.py", "shlex.py"):
        lines = (STDLIB / path).read_text().splitlines(keepends=True)
        for i in range(40, len(lines), 9):
            if not lines[i].strip():
                continue
            head = "".join(lines[:i]) + lines[i][: len(lines[i]) // 2]
            prompt = fim_prompt(lm, heal(lm, head, "healing"), "".join(lines[i + 1 : i + 20]))
            want = greedy_line(lm, vocab, prompt)[0]
            if recycler.greedy_line(vocab, prompt)[0] != want:
                differ.append(prompt)
            total += 1
    assert total > 40 and len(differ) <= 2
    for prompt in differ:
        assert _closest_call(lm, vocab, prompt) < NEAR_TIE
