"""Classify a byte-level BPE vocabulary (Qtok-style) and measure script coverage."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from pathlib import Path

from fillpoint.completion.runtime import byte_decoder

CLASSES = (
    "special",
    "control",
    "partial_utf8",
    "indent_run",
    "newline_ws",
    "other_ws",
    "single_char",
    "word_initial",
    "identifier_inner",
    "number",
    "punctuation",
    "mixed",
)


def token_bytes(token: str) -> bytes:
    """The bytes a byte-level vocabulary entry stands for."""
    table = byte_decoder()
    return bytes(table[ch] for ch in token)


def script_of(ch: str) -> str:
    """A coarse Unicode script: the first word of the character's name, or Common."""
    if ch.isascii():
        return "Latin" if ch.isalpha() else "Common"
    cat = unicodedata.category(ch)
    if cat[0] in "PSZNC" and not ch.isalpha():
        return "Common"
    name = unicodedata.name(ch, "")
    if not name:
        return "Unknown"
    first = name.split()[0]
    if first in ("CJK", "HIRAGANA", "KATAKANA"):
        return "CJK" if first == "CJK" else "Japanese kana"
    return first.title()


def classify(text: str, special: bool = False) -> str:
    """The class of one decoded vocabulary entry (`text` as bytes decoded, None-safe)."""
    if special:
        return "special"
    if text == "":
        return "partial_utf8"
    if text.isspace():
        if set(text) <= {" ", "\t"} and len(text) >= 2:
            return "indent_run"
        return "newline_ws" if "\n" in text or "\r" in text else "other_ws"
    if len(text) == 1:
        return "control" if unicodedata.category(text) == "Cc" else "single_char"
    body = text[1:] if text[0] == " " else text
    if body.isidentifier():
        return "word_initial" if text[0] == " " else "identifier_inner"
    if body.isdigit():
        return "number"
    if all(not (c.isalnum() or c == "_" or c.isspace()) for c in body):
        return "punctuation"
    return "mixed"


def classify_entry(token: str, special: bool = False) -> tuple[str, str | None]:
    """(class, script of a single character or None) for one raw vocabulary entry."""
    if special:
        return "special", None
    try:
        text = token_bytes(token).decode("utf-8")
    except (UnicodeDecodeError, KeyError):  # a piece of a multi-byte character
        return "partial_utf8", None
    kind = classify(text)
    return kind, script_of(text) if kind in ("single_char", "control") else None


def load_vocab(path: Path) -> tuple[dict[str, int], set[str]]:
    """A tokenizer.json's vocabulary and the set of its special tokens."""
    return vocab_from_spec(json.loads(Path(path).read_text(encoding="utf-8")))


def vocab_from_spec(spec: dict) -> tuple[dict[str, int], set[str]]:
    """The vocabulary and special tokens of a parsed tokenizer.json."""
    vocab = dict(spec["model"]["vocab"])
    specials = {a["content"] for a in spec.get("added_tokens", []) if a.get("special")}
    for content in specials:
        vocab.setdefault(content, len(vocab))
    return vocab, specials


def vocab_profile(vocab: dict[str, int], specials: set[str]) -> tuple[Counter, Counter]:
    """Counts per class, and single-character entries per script."""
    classes: Counter = Counter()
    scripts: Counter = Counter()
    for token in vocab:
        kind, script = classify_entry(token, token in specials)
        classes[kind] += 1
        if script:
            scripts[script] += 1
    return classes, scripts


def script_coverage(vocab: dict[str, int], texts: list[str]) -> dict[str, tuple[int, float]]:
    """Per script: characters seen in `texts` and the share whose bytes are a single entry."""
    table = {v: k for k, v in byte_decoder().items()}
    seen: Counter = Counter()
    for text in texts:
        seen.update(ch for ch in text if not ch.isascii())
    total: Counter = Counter()
    whole: Counter = Counter()
    for ch, n in seen.items():
        script = script_of(ch)
        total[script] += n
        if "".join(table[b] for b in ch.encode("utf-8")) in vocab:
            whole[script] += n
    return {s: (n, whole[s] / n) for s, n in total.most_common()}
