"""Post-processing of inline (rest-of-line) completions: pure functions on strings.

The rules are kept as golden cases in tests/completion/data/postprocess_golden.json.
"""

from __future__ import annotations

from dataclasses import dataclass

OPENERS = "([{"
CLOSERS = ")]}"
MATCH = dict(zip(CLOSERS, OPENERS, strict=True))


@dataclass
class _Scan:
    """Brackets found in code outside strings and comments, and the state at the end."""

    brackets: list[tuple[int, str]]  # (index, bracket)
    quote: str | None  # the delimiter of a string still open at the end
    comment: bool  # the text ends inside a comment


def _scan(text: str, quote: str | None = None) -> _Scan:
    """Find the brackets of one line of Python, starting inside string `quote` if given."""
    brackets: list[tuple[int, str]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is not None:
            if ch == "\\":
                i += 2
            elif text.startswith(quote, i):
                i += len(quote)
                quote = None
            else:
                i += 1
            continue
        if ch == "#":
            return _Scan(brackets, None, True)
        if ch in "'\"":
            quote = ch * 3 if text.startswith(ch * 3, i) else ch
            i += len(quote)
            continue
        if ch in OPENERS or ch in CLOSERS:
            brackets.append((i, ch))
        i += 1
    return _Scan(brackets, quote, False)


def _open_brackets(brackets: list[tuple[int, str]]) -> list[str]:
    """The brackets still open after `brackets`; closers that match nothing are ignored."""
    stack: list[str] = []
    for _, ch in brackets:
        if ch in OPENERS:
            stack.append(ch)
        elif stack and stack[-1] == MATCH[ch]:
            stack.pop()
    return stack


def _closed_by(suffix_brackets: list[tuple[int, str]], stack: list[str]) -> int:
    """How many of the open brackets on `stack` (from the top) the suffix closes."""
    own: list[str] = []
    closed = 0
    for _, ch in suffix_brackets:
        if ch in OPENERS:
            own.append(ch)
        elif own:
            if own.pop() != MATCH[ch]:
                break  # the suffix is not balanced code; trust nothing after this
        elif closed < len(stack) and stack[-1 - closed] == MATCH[ch]:
            closed += 1
        else:
            break
    return closed


def truncate_line(text: str) -> str:
    """The completion up to its first line break."""
    for i, ch in enumerate(text):
        if ch in "\r\n":
            return text[:i]
    return text


def balance_brackets(prefix_line: str, completion: str, suffix_line: str) -> str:
    """Cut the completion at its first closing bracket that does not fit the line.

    A closer fits if it matches the innermost open bracket, and that bracket is not one
    the text after the cursor already closes (the editor's auto-inserted `)`, say).
    """
    before = _scan(prefix_line)
    if before.comment:
        return completion
    opened = _open_brackets(before.brackets)
    closed_after = len(opened) - _closed_by(_scan(suffix_line, before.quote).brackets, opened)
    # (bracket, the suffix closes it) for each open bracket, innermost last
    stack = [(ch, i >= closed_after) for i, ch in enumerate(opened)]
    for i, ch in _scan(completion, before.quote).brackets:
        if ch in OPENERS:
            stack.append((ch, False))
        elif not stack or stack[-1] != (MATCH[ch], False):
            return completion[:i]
        else:
            stack.pop()
    return completion


def _is_word(ch: str) -> bool:
    """True for characters that continue an identifier."""
    return ch.isalnum() or ch == "_"


def drop_suffix_overlap(completion: str, line_suffix: str) -> str:
    """Remove the end of the completion that repeats the start of the text after the cursor."""
    for k in range(min(len(completion), len(line_suffix)), 0, -1):
        overlap = line_suffix[:k]
        if not completion.endswith(overlap):
            continue
        before = completion[-k - 1] if k < len(completion) else ""
        after = line_suffix[k] if k < len(line_suffix) else ""
        # Only whole tokens overlap: `bar` before `r = 1` does not repeat the `r`.
        if _is_word(overlap[0]) and before and _is_word(before):
            continue
        if _is_word(overlap[-1]) and after and _is_word(after):
            continue
        return completion[:-k]
    return completion


def clean_inline(prefix_line: str, completion: str, line_suffix: str) -> str:
    """The ghost text to show: one line, brackets that fit, no repeat of the suffix."""
    text = truncate_line(completion)
    if prefix_line.strip() and prefix_line[-1:].isspace():
        text = text.lstrip(" \t")  # `x = ` + ` y` would show two spaces
    text = balance_brackets(prefix_line, text, line_suffix).rstrip()
    text = drop_suffix_overlap(text, line_suffix)
    return text if text.strip() else ""
