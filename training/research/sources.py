"""Text categories available on this machine, sampled for the mixture-inference study."""

from __future__ import annotations

import json
import random
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from .segments import split_source

MAX_FILE_CHARS = 200_000  # minified bundles and generated headers say little about a category


def is_test_path(path: str) -> bool:
    """A test module: under a tests/ folder or named test_*.py / *_test.py."""
    parts = PurePosixPath(path).parts
    name = parts[-1] if parts else ""
    in_tests = any(p in ("tests", "test", "testing") for p in parts[:-1])
    return in_tests or name.startswith("test_") or name.endswith("_test.py")


def corpus_records(
    corpus: Path, split: str, rate: float, seed: int, test_rate: float | None = None
) -> Iterator[dict]:
    """A random share of a split's records, test modules at `test_rate`; chosen lines parsed."""
    rng = random.Random(seed)
    test_rate = rate if test_rate is None else max(rate, test_rate)
    with (Path(corpus) / f"{split}.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            draw = rng.random()
            if draw < rate:
                yield json.loads(line)
            elif draw < test_rate:
                rec = json.loads(line)
                if is_test_path(rec["path"]):
                    yield rec


def python_categories(records: Iterator[dict]) -> dict[str, list[str]]:
    """Library code and test code with prose removed, and the prose (docstrings, comments)."""
    out: dict[str, list[str]] = {"library": [], "tests": [], "prose": []}
    for rec in records:
        seg = split_source(rec["text"])
        if seg is None:
            continue
        out["tests" if is_test_path(rec["path"]) else "library"].append(seg.code)
        out["prose"].append("\n".join(seg.docstring + seg.comment))
    return out


def _read_files(paths: list[Path], budget: int, accept: Callable[[str], bool]) -> list[str]:
    """Texts of `paths` (in the given order) until `budget` characters are collected."""
    texts, total = [], 0
    for path in paths:
        if total >= budget:
            break
        try:
            if not path.is_file() or path.stat().st_size > MAX_FILE_CHARS:
                continue
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):  # unreadable or binary: not text of the category
            continue
        if text.strip() and accept(text):
            texts.append(text)
            total += len(text)
    return texts


def _glob(
    roots: list[Path], patterns: tuple[str, ...], seed: int, limit: int = 20000
) -> list[Path]:
    """Files under `roots` matching `patterns`, shuffled."""
    found: list[Path] = []
    for root in roots:
        if root.is_dir():
            for pattern in patterns:
                found.extend(p for _, p in zip(range(limit), root.rglob(pattern), strict=False))
    found = sorted(set(found))
    random.Random(seed).shuffle(found)
    return found


def _is_shell(text: str) -> bool:
    """A shell script by its shebang."""
    first = text.split("\n", 1)[0]
    return first.startswith("#!") and any(s in first for s in ("/sh", "bash", "dash"))


def system_categories(budget: int, seed: int) -> dict[str, list[str]]:
    """Other text on this machine: prose docs, C headers, JavaScript, shell scripts."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    doc_roots = [Path("/usr/share/doc"), purelib, Path("/usr/lib/python3/dist-packages")]
    cats = {
        "docs": _read_files(
            _glob(doc_roots, ("*.md", "*.rst", "*.txt"), seed), budget, lambda t: True
        ),
        "c": _read_files(_glob([Path("/usr/include")], ("*.h",), seed), budget, lambda t: True),
        "js": _read_files(
            _glob([Path("/usr/lib/node_modules")], ("*.js",), seed),
            budget,
            lambda t: t.count("\n") > 5,  # skip minified one-liners
        ),
        "shell": _read_files(
            _glob([Path("/usr/bin"), Path("/usr/sbin"), Path("/usr/share")], ("*",), seed, 5000),
            budget,
            _is_shell,
        ),
    }
    return {k: v for k, v in cats.items() if v}


def chunks(text: str, size: int) -> list[str]:
    """`text` in pieces of about `size` characters, cut after a newline where possible."""
    out, start = [], 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        out.append(text[start:end])
        start = end
    return out


def split_pool(texts: list[str], seed: int, chunk: int = 2000) -> tuple[list[str], list[str]]:
    """Disjoint document halves (one to train on, one to infer with), each cut into chunks."""
    # Chunks let a small sample draw from many documents: a few whole files would stand for
    # their own package's names rather than for the category.
    order = texts[:]
    random.Random(seed).shuffle(order)
    halves = order[0::2], order[1::2]
    return tuple([c for t in half for c in chunks(t, chunk)] for half in halves)


def take(texts: list[str], chars: int, rng: random.Random) -> list[str]:
    """Documents drawn at random (cycling when needed) up to `chars` characters."""
    if not texts or chars <= 0:
        return []
    out, total = [], 0
    order = texts[:]
    while total < chars:
        rng.shuffle(order)
        for text in order:
            piece = text[: chars - total]
            out.append(piece)
            total += len(piece)
            if total >= chars:
                break
    return out
