"""The editing sessions `fillpoint bench` replays: held-out files, keystrokes and request points.

A session opens a file with its first lines already written, then types the rest one chunk
(by default one character) at a time. Completion requests fall at identifier starts and 1-3
characters into identifiers; inline requests at token boundaries of a line. Everything here
is pure and seeded, so fillpoint and jedi-language-server see the same keystrokes.
"""

from __future__ import annotations

import io
import random
import sysconfig
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .corpus import iter_split

# Fallback held-out files when no corpus is built: mid-sized, plain, stable stdlib modules.
STDLIB_FILES = ("textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "colorsys.py", "heapq.py")
MIN_CHARS, MAX_CHARS = 1_500, 40_000  # tiny files have no context; huge ones are rare
COMPLETE_RATE = 0.35  # share of identifiers that get a completion request
INLINE_RATE = 0.25  # share of lines that get an inline request

RequestKind = Literal["complete", "inline"]


@dataclass(frozen=True)
class Request:
    """One request at a character offset of the file; `typed` characters of a name precede it."""

    offset: int
    kind: RequestKind
    typed: int = 0  # 0: identifier start (or a line position for inline)


@dataclass
class Session:
    """One held-out file: the text opened with, then the rest typed up to the last request."""

    name: str
    text: str
    start: int  # offset where typing starts; text[:start] is in the didOpen
    requests: list[Request] = field(default_factory=list)

    @property
    def end(self) -> int:
        """Offset of the last request: typing stops there."""
        return self.requests[-1].offset if self.requests else self.start

    def uri(self, folder: str, i: int) -> str:
        """The document URI the `i`-th session is typed into: its file's name under
        file:///`folder`/`i`/ (the file name tells a server the language)."""
        return f"file:///{folder}/{i}/{Path(self.name.split(':')[-1]).name}"

    def before_keystroke(self, req: Request) -> str:
        """The text as it was one keystroke (of one character) before `req`: where the
        idle work ran while the user paused."""
        return self.text[: max(self.start, req.offset - 1)]


def held_out_files(corpus: Path | None, n_files: int, seed: int) -> list[tuple[str, str]]:
    """(name, text) of `n_files` test-split files from distinct packages, else stdlib modules.

    Names are `package:path`; the stdlib fallback's package is `stdlib`.
    """
    if corpus is not None and (corpus / "test.jsonl").is_file():
        by_package: dict[str, list[tuple[str, str]]] = {}
        for rec in iter_split(corpus, "test"):
            if MIN_CHARS <= len(rec["text"]) <= MAX_CHARS:
                name = f"{rec['package']}:{rec['path']}"
                by_package.setdefault(rec["package"], []).append((name, rec["text"]))
        if by_package:
            rng = random.Random(seed)
            packages = sorted(by_package)
            rng.shuffle(packages)
            # One file per package first (held-out packages differ most), then seconds, ...
            picked: list[tuple[str, str]] = []
            while len(picked) < n_files and any(by_package[p] for p in packages):
                for p in packages:
                    if by_package[p] and len(picked) < n_files:
                        files = by_package[p]
                        picked.append(files.pop(rng.randrange(len(files))))
            return picked
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for name in STDLIB_FILES[:n_files]:
        path = root / name
        if path.is_file():
            out.append((f"stdlib:{name}", path.read_text(encoding="utf-8", errors="replace")))
    return out


def _tokens(text: str) -> list[tokenize.TokenInfo] | None:
    """Python's tokens of a whole file, or None if it does not tokenize (Python 2, say)."""
    try:
        return list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None


def _line_starts(text: str) -> list[int]:
    """Offset of the first character of each line (1-based line i at index i - 1)."""
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    return starts


def plan_session(name: str, text: str, n_requests: int, rng: random.Random) -> Session | None:
    """Request points for one file, starting at a random line in its first half."""
    toks = _tokens(text)
    if toks is None:
        return None
    starts = _line_starts(text)
    start_line = rng.randrange(max(1, len(starts) // 2))
    start = starts[start_line]
    found: list[Request] = []
    inline_lines: set[int] = set()
    line_rolls: dict[int, bool] = {}
    for tok in toks:
        row, col = tok.start
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER):
            continue
        if tok.type in (tokenize.INDENT, tokenize.DEDENT) or tok.start[0] != tok.end[0]:
            continue  # multi-line strings: a request inside would skip the model anyway
        offset = starts[row - 1] + col
        if offset < start:
            continue
        if row not in line_rolls:
            line_rolls[row] = rng.random() < INLINE_RATE
        if line_rolls[row] and row not in inline_lines and rng.random() < 0.5:
            inline_lines.add(row)  # the first boundary that wins the coin flip on that line
            found.append(Request(offset, "inline"))
        if tok.type == tokenize.NAME and rng.random() < COMPLETE_RATE:
            typed = rng.randrange(min(4, len(tok.string)))  # 0 (start) or 1-3 characters in
            found.append(Request(offset + typed, "complete", typed))
    found.sort(key=lambda r: (r.offset, r.kind))
    return Session(name, text, start, found[:n_requests])


def plan(files: list[tuple[str, str]], n_requests: int, seed: int) -> list[Session]:
    """Sessions over `files` that together hold at most `n_requests` requests."""
    rng = random.Random(seed)
    sessions: list[Session] = []
    for i, (name, text) in enumerate(files):
        share = (n_requests - sum(len(s.requests) for s in sessions)) // (len(files) - i)
        session = plan_session(name, text, share, rng)
        if session is not None and session.requests:
            sessions.append(session)
    return sessions


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the LSP's default column unit."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def advance(line: int, col: int, text: str) -> tuple[int, int]:
    """The (line, UTF-16 column) after inserting `text` at (line, col)."""
    head, sep, tail = text.rpartition("\n")
    if sep:
        return line + head.count("\n") + 1, utf16_len(tail)
    return line, col + utf16_len(text)


def keystrokes(text: str, chunk: int) -> Iterator[str]:
    """`text` cut into chunks of `chunk` characters; a newline ends a chunk, as Enter does."""
    i = 0
    while i < len(text):
        piece = text[i : i + chunk]
        nl = piece.find("\n")
        if nl >= 0:
            piece = piece[: nl + 1]
        yield piece
        i += len(piece)
