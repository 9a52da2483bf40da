"""Split Python source into code, docstrings and comments; identifiers and their word boundaries."""

from __future__ import annotations

import io
import keyword
import re
import tokenize
from dataclasses import dataclass, field

KINDS = ("code", "docstring", "comment")
_SKIP_BEFORE_DOCSTRING = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])")
_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass
class Segments:
    """One file in three parts: code (prose removed), docstrings, comments; and its identifiers."""

    code: str = ""
    docstring: list[str] = field(default_factory=list)
    comment: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)  # with a leading space where it had one

    def texts(self, kind: str) -> list[str]:
        """The pieces of one kind as a list of texts."""
        return [self.code] if kind == "code" else list(getattr(self, kind))


def _offsets(text: str) -> list[int]:
    """Character offset of the start of each line (1-based rows map to index row - 1)."""
    starts, pos = [0], 0
    for line in text.splitlines(keepends=True):
        pos += len(line)
        starts.append(pos)
    return starts


def split_source(text: str) -> Segments | None:
    """Segments of a Python file via `tokenize`; None when it does not tokenize."""
    starts = _offsets(text)
    seg = Segments()
    spans: list[tuple[int, int]] = []
    prev_type = tokenize.NEWLINE  # a string first in the file is the module docstring
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            begin = starts[tok.start[0] - 1] + tok.start[1]
            end = starts[tok.end[0] - 1] + tok.end[1]
            if tok.type == tokenize.COMMENT:
                seg.comment.append(tok.string)
                spans.append((begin, end))
            elif tok.type == tokenize.STRING and prev_type in _SKIP_BEFORE_DOCSTRING:
                # A string that opens a statement is a docstring (or a bare string statement,
                # which is prose too).
                seg.docstring.append(tok.string)
                spans.append((begin, end))
            elif tok.type == tokenize.NAME and not keyword.iskeyword(tok.string):
                spaced = begin > 0 and text[begin - 1] == " "
                seg.identifiers.append((" " if spaced else "") + tok.string)
            if tok.type not in (tokenize.NL, tokenize.COMMENT):
                prev_type = tok.type
    except (tokenize.TokenError, SyntaxError, IndexError):  # Python 2 files, stray tabs
        return None
    parts, pos = [], 0
    for begin, end in spans:
        parts.append(text[pos:begin])
        pos = end
    parts.append(text[pos:])
    seg.code = "".join(parts)
    return seg


def count_words(text: str) -> int:
    """Words for fertility: runs of word characters, and each punctuation mark."""
    return len(_WORD.findall(text))


def subwords(name: str) -> list[str]:
    """The words of an identifier: split at underscores, camelCase humps and letter-digit edges."""
    words = []
    for part in name.split("_"):
        words.extend(w for w in _CAMEL.split(part) if w)
    return words


def boundaries(name: str) -> set[int]:
    """Cut positions inside `name` that fall on a word boundary (either side of an underscore)."""
    cuts: set[int] = set()
    for i, ch in enumerate(name):
        if ch == "_":
            cuts.update(k for k in (i, i + 1) if 0 < k < len(name))
    core = name.strip("_")
    lead = len(name) - len(name.lstrip("_"))
    for m in _CAMEL.finditer(core):
        cuts.add(lead + m.start())
    return cuts


def is_compound(name: str) -> bool:
    """An identifier of two or more words (`max_items`, `assertEqual`)."""
    return len(subwords(name)) >= 2


def cut_points(pieces: list[str]) -> list[int]:
    """Positions between consecutive pieces of one identifier (leading space excluded)."""
    cuts, pos = [], 0
    for piece in pieces[:-1]:
        pos += len(piece)
        cuts.append(pos)
    return cuts


@dataclass
class SplitStats:
    """How identifiers are cut: at word boundaries or elsewhere."""

    identifiers: int = 0
    compound: int = 0
    compound_whole: int = 0
    cuts: int = 0
    cuts_at_boundary: int = 0
    boundaries: int = 0
    boundaries_cut: int = 0

    def add(self, name: str, pieces: list[str], weight: int = 1) -> None:
        """Count one identifier given its pieces (concatenating to `name`)."""
        self.add_cuts(name, cut_points(pieces), weight)

    def add_cuts(self, name: str, cuts: list[int], weight: int = 1) -> None:
        """Count one identifier (`weight` occurrences) cut at positions `cuts`."""
        edges = boundaries(name)
        self.identifiers += weight
        if is_compound(name):
            self.compound += weight
            self.compound_whole += weight * (not cuts)
        self.cuts += weight * len(cuts)
        self.cuts_at_boundary += weight * sum(c in edges for c in cuts)
        # An underscore has two boundary positions; a word boundary is cut if either is.
        self.boundaries += weight * max(len(subwords(name)) - 1, 0)
        self.boundaries_cut += weight * _boundaries_cut(name, set(cuts))

    def summary(self) -> dict[str, float]:
        """Rates: boundary precision of cuts, recall of word boundaries, compounds kept whole."""
        return {
            "cut_precision": self.cuts_at_boundary / max(self.cuts, 1),
            "boundary_recall": self.boundaries_cut / max(self.boundaries, 1),
            "compound_whole": self.compound_whole / max(self.compound, 1),
        }


def _boundaries_cut(name: str, cuts: set[int]) -> int:
    """How many word boundaries of `name` have a cut on them."""
    hit = 0
    core_start = len(name) - len(name.lstrip("_"))
    core = name[core_start:].rstrip("_")
    pos = core_start
    parts = re.split(r"(_+)", core)
    for k, part in enumerate(parts):
        if k % 2 == 1:  # an underscore run between two words
            hit += bool({pos, pos + len(part)} & cuts)
        else:
            for m in _CAMEL.finditer(part):
                hit += (pos + m.start()) in cuts
        pos += len(part)
    return hit
