"""Lexical token types (Python's `tokenize`) aligned to every BPE piece, for the type head."""

from __future__ import annotations

import io
import keyword
import token
import tokenize

import numpy as np

# Operators by their exact name (LPAR, DOT, PLUSEQUAL, ...): the type head learns, for
# example, that a call follows a name, not just that "some operator" does.
OPERATORS = sorted(set(token.EXACT_TOKEN_TYPES.values()))
TYPE_NAMES = [
    "PAD",
    "WS",
    "NEWLINE",
    "NL",
    "INDENT",
    "DEDENT",
    "COMMENT",
    "NAME",
    "KEYWORD",
    "NUMBER",
    "STRING",
    "ERRORTOKEN",
    "EOT",
    "FIM",
] + [token.tok_name[op] for op in OPERATORS]
TYPE_ID = {name: i for i, name in enumerate(TYPE_NAMES)}
N_TYPES = len(TYPE_NAMES)
WS, EOT_TYPE, FIM_TYPE, PAD_TYPE = TYPE_ID["WS"], TYPE_ID["EOT"], TYPE_ID["FIM"], TYPE_ID["PAD"]
# Types that token-level accuracy does not count (CodeXGLUE: structural tokens).
STRUCTURAL = {TYPE_ID[n] for n in ("PAD", "WS", "NEWLINE", "NL", "INDENT", "DEDENT", "EOT", "FIM")}


def lexical_type(tok: tokenize.TokenInfo) -> int:
    """The type id of one lexical token."""
    if tok.type == token.OP:  # an unknown character (`¼`) is an OP whose exact type is OP
        return TYPE_ID.get(token.tok_name[tok.exact_type], TYPE_ID["ERRORTOKEN"])
    if tok.type == token.NAME:
        return TYPE_ID["KEYWORD" if keyword.iskeyword(tok.string) else "NAME"]
    name = token.tok_name.get(tok.type, "ERRORTOKEN")
    return TYPE_ID.get(name, TYPE_ID["ERRORTOKEN"])


def char_types(text: str) -> np.ndarray:
    """The lexical type of every character of `text` (WS between tokens)."""
    out = np.full(len(text), WS, dtype=np.uint8)
    line_starts = [0]
    # The lines tokenize numbers: split at "\n" only (str.splitlines also splits at form
    # feeds, \x1c-\x1e, \x85 and \u2028, which would shift every later token).
    for line in io.StringIO(text).readlines():
        line_starts.append(line_starts[-1] + len(line))
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (token.ENDMARKER, token.DEDENT):
                continue
            (r0, c0), (r1, c1) = tok.start, tok.end
            if r0 - 1 >= len(line_starts) or r1 - 1 >= len(line_starts):
                continue
            start, end = line_starts[r0 - 1] + c0, line_starts[r1 - 1] + c1
            out[start:end] = lexical_type(tok)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass  # the typed prefix keeps its types; the rest stays WS
    return out


def piece_types(char_type: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each BPE piece (start, end) takes the type of its first non-whitespace character."""
    n = len(char_type)
    if len(offsets) == 0:
        return np.empty(0, dtype=np.uint8)
    # next_nonws[i]: index of the first non-WS character at or after i (n if none).
    idx = np.where(char_type != WS, np.arange(n), n)
    next_nonws = np.minimum.accumulate(idx[::-1])[::-1] if n else idx
    next_nonws = np.append(next_nonws, n)
    starts, ends = offsets[:, 0], offsets[:, 1]
    first = next_nonws[np.minimum(starts, n)]
    padded = np.append(char_type, WS)
    return np.where(first < ends, padded[first], WS).astype(np.uint8)
