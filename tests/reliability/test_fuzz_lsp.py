"""Property-based fuzzing of the real server: random edit and request sequences over LSP.

After every step the server must be alive, must have answered every request within
the budget, and (in process) its text of every open document must equal a reference
model of the edits. Hypothesis derandomizes the CI run; FILLPOINT_FUZZ_EXAMPLES=N turns
on a longer, random run with 1 MB lines (see docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import re
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_rpc import (
    REQUEST_CANCELLED,
    InProcess,
    Subprocess,
    completion_params,
    inline_params,
    open_params,
)

LONG_RUN = bool(os.environ.get("FILLPOINT_FUZZ_EXAMPLES"))
EXAMPLES = int(os.environ.get("FILLPOINT_FUZZ_EXAMPLES") or 15)
MAX_LINE = 1_000_000 if LONG_RUN else 20_000  # longest generated line, in characters
BUDGET_S = float(os.environ.get("FILLPOINT_FUZZ_BUDGET_S") or 10.0)  # per request
LOG = "window/logMessage"
HANG_GRACE_S = 60.0
STEPS = 30 if LONG_RUN else 15

FRAGMENTS = [
    "import os\n", "def f(x):\n", "    return x.", "os.pa", "self.assert", "class C:\n",
    "\r\n", "\r", "\n", "\t", " ", "x", "é", "e\u0301", "中", "😀", "🐍x",
    "\x00", "\ud800", "\udfff", "'", '"""', "# note", "(", ")", "[", "]", "{", "}", ".",
]  # fmt: skip
MALFORMED: list[Any] = [
    {"position": {"line": -1, "character": 0}},
    {"position": {"line": 0, "character": -3}},
    {"position": {"line": 2**31, "character": 0}},  # past LSP's uinteger
    {"position": {"line": 0}},
    {},
    None,
    [1, 2],
]
INVALID_PARAMS = -32602
_BREAK = re.compile(r"\r\n|\r|\n")


# ---------------------------------------------------------------- reference model
def units(text: str, encoding: str) -> int:
    """Length in LSP position units (lone surrogates: one UTF-16 unit, three UTF-8 bytes)."""
    if encoding == "utf-16":
        return len(text.encode("utf-16-le", "surrogatepass")) // 2
    return len(text.encode("utf-8", "surrogatepass"))


def char_units(cp: int, encoding: str) -> int:
    """Units of one code point (the same rule as `units`, without encoding a string)."""
    if encoding == "utf-16":
        return 2 if cp > 0xFFFF else 1
    return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4


@lru_cache(maxsize=16)
def _ends(line: str, encoding: str) -> list[int]:
    """Where each character of a line ends, in units (cached: megabyte lines repeat)."""
    return list(accumulate(char_units(ord(c), encoding) for c in line))


def lines(text: str) -> list[tuple[int, int]]:
    """(start, end before the line break) of every line; \\r\\n, \\r and \\n all end one."""
    out, start = [], 0
    for m in _BREAK.finditer(text):
        out.append((start, m.start()))
        start = m.end()
    return [*out, (start, len(text))]


def offset(text: str, line: int, character: int, encoding: str) -> int:
    """The spec's reading of a position: past the line end clamps, past the last line is EOF."""
    bounds = lines(text)
    if line >= len(bounds):
        return len(text)
    start, end = bounds[line]
    if text.isascii():
        return min(start + character, end)
    # The first character whose end lies past `character` (a position inside a character
    # rounds down to its start).
    return start + bisect_right(_ends(text[start:end], encoding), character)


def is_valid(text: str, line: int, character: int, encoding: str) -> bool:
    """A position on a character boundary inside the document."""
    bounds = lines(text)
    if not (0 <= line < len(bounds)) or character < 0:
        return False
    start, end = bounds[line]
    i = offset(text, line, character, encoding)
    return units(text[start:i], encoding) == character


@dataclass
class Doc:
    uri: str
    text: str
    version: int = 1


@dataclass
class Stats:
    examples: int = 0
    steps: int = 0
    requests: int = 0
    chars_sent: int = 0
    crashes: int = 0
    hangs: int = 0
    desyncs: int = 0
    longest_line: int = 0
    engine_errors: int = 0  # requests the server answered empty after an engine exception
    error_kinds: dict[str, int] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- strategies
@st.composite
def texts(draw: Any) -> str:
    """Python-ish text with line-ending mixes, astral characters, NULs, lone surrogates."""
    parts = draw(st.lists(st.sampled_from(FRAGMENTS), max_size=30))
    if draw(st.integers(0, 3)) == 0:  # deep nesting
        depth = draw(st.integers(1, 400))
        parts.insert(draw(st.integers(0, len(parts))), "(" * depth + "x" + ")" * depth)
    if draw(st.integers(0, 3)) == 0:  # a long line
        size = draw(st.integers(1, MAX_LINE))
        unit = draw(st.sampled_from(["a", "ab ", "😀", "é", "x."]))
        parts.insert(draw(st.integers(0, len(parts))), (unit * size)[:size])
    # On the wire "\ud800\udfff" is one astral character, as it is for a UTF-16 editor:
    # the reference holds what the server can receive, not what Python can concatenate.
    return json.loads(json.dumps("".join(parts)))


def positions(draw: Any, text: str, encoding: str) -> tuple[int, int]:
    """A position: usually on a character boundary, sometimes past the line or the file."""
    bounds = lines(text)
    line = draw(st.integers(0, len(bounds)))  # len(bounds): one past the last line
    start, end = bounds[min(line, len(bounds) - 1)]
    width = units(text[start:end], encoding)
    if width > 200 and draw(st.booleans()):
        return line, draw(st.sampled_from([0, width // 2, width, width + 1]))
    return line, draw(st.integers(0, width + 2))


# ---------------------------------------------------------------- the fuzzer
class Fuzzer:
    """Applies random steps to the server and to the reference model, checking after each."""

    def __init__(self, target: Any, encoding: str, stats: Stats) -> None:
        self.target, self.client, self.encoding, self.stats = target, target.client, encoding, stats
        self.docs: dict[str, Doc] = {}
        self.serial = 0

    def request(self, method: str, params: Any) -> dict[str, Any]:
        self.stats.requests += 1
        msg_id = self.client.send_request(method, params)
        return self.wait(msg_id, f"{method} {str(params)[:200]}")

    def wait(self, msg_id: int, what: str) -> dict[str, Any]:
        """The response within the budget; on a hang, how much later it came (if at all)."""
        try:
            return self.client.wait(msg_id, BUDGET_S)
        except AssertionError as exc:
            if not self.target.alive():
                self.stats.crashes += 1
                raise
            self.stats.hangs += 1
            start = time.monotonic()
            try:  # slow or stuck? the answer helps whoever debugs it
                self.client.wait(msg_id, HANG_GRACE_S)
                late = f"answered {time.monotonic() - start:.1f} s after the budget"
            except AssertionError:
                late = f"still unanswered {HANG_GRACE_S} s after the budget"
            raise AssertionError(f"{exc}; {late}: {what}") from None

    def check_items(self, doc: Doc | None, line: int, ch: int, reply: dict[str, Any]) -> None:
        """Completion edits end at the cursor on its line; invalid positions get nothing."""
        assert "error" not in reply or reply["error"]["code"] == REQUEST_CANCELLED, reply
        items = (reply.get("result") or {}).get("items", [])
        if doc is None or not is_valid(doc.text, line, ch, self.encoding):
            assert items == [], f"items for an invalid position {line}:{ch}"
            return
        for item in items:
            rng = item["textEdit"]["range"] if "textEdit" in item else item["range"]
            assert rng["end"] == {"line": line, "character": ch}, (rng, line, ch)
            assert rng["start"]["line"] == line and rng["start"]["character"] <= ch, rng
            assert is_valid(doc.text, line, rng["start"]["character"], self.encoding), rng

    def barrier_and_check(self) -> None:
        """One request (answered only after every earlier edit is applied), then compare."""
        reply = self.request("textDocument/completion", completion_params("file:///nowhere", 0, 0))
        assert reply.get("result") == {"isIncomplete": True, "items": []}, reply
        assert self.target.alive(), "server died"
        store = getattr(self.target.server, "store", None)
        if store is None:  # a subprocess: sync is checked through the completion ranges
            return
        open_uris = set(store.uris())
        mine = {u for u in open_uris if u.startswith("file:///fuzz/")}
        if mine != set(self.docs):
            self.stats.desyncs += 1
        assert mine == set(self.docs)
        for doc in self.docs.values():
            served = store.get(doc.uri)
            if served.text != doc.text or served.version != doc.version:
                self.stats.desyncs += 1
            assert served.version == doc.version
            assert served.text == doc.text, f"desync in {doc.uri}"

    def step(self, data: Any) -> None:
        kinds = ["open", "change", "change", "change", "full", "complete", "complete", "inline"]
        kinds += ["cancel", "close", "malformed"]
        kind = data.draw(st.sampled_from(kinds if self.docs else ["open", "complete"]))
        self.stats.seen[kind] = self.stats.seen.get(kind, 0) + 1
        self.stats.steps += 1
        doc = self.docs[data.draw(st.sampled_from(sorted(self.docs)))] if self.docs else None
        if kind == "open" or doc is None and kind != "complete":
            if doc is None or data.draw(st.integers(0, 4)):
                self.serial += 1
                uri = f"file:///fuzz/{self.stats.examples}-{self.serial}.py"
            else:  # didOpen of an open document replaces it
                uri = doc.uri
            doc = Doc(uri, data.draw(texts()))
            self.docs[doc.uri] = doc
            self.send_text(doc.text)
            self.client.notify("textDocument/didOpen", open_params(doc.uri, doc.text))
        elif kind in ("change", "full"):
            changes = []
            for _ in range(data.draw(st.integers(1, 3))):
                new = data.draw(texts())
                self.send_text(new)
                if kind == "full":
                    changes.append({"text": new})
                    doc.text = new
                    continue
                a = positions(data.draw, doc.text, self.encoding)
                b = positions(data.draw, doc.text, self.encoding)
                oa, ob = (offset(doc.text, *p, self.encoding) for p in (a, b))
                (start, so), (end, eo) = sorted([(a, oa), (b, ob)], key=lambda t: t[1])
                rng = {
                    "start": {"line": start[0], "character": start[1]},
                    "end": {"line": end[0], "character": end[1]},
                }
                changes.append({"range": rng, "text": new})
                doc.text = doc.text[:so] + new + doc.text[eo:]
            doc.version += 1
            ident = {"uri": doc.uri, "version": doc.version}
            params = {"textDocument": ident, "contentChanges": changes}
            self.client.notify("textDocument/didChange", params)
        elif kind in ("complete", "inline"):
            uri = doc.uri if doc is not None else "file:///fuzz/never-opened.py"
            line, ch = positions(data.draw, doc.text if doc else "", self.encoding)
            if data.draw(st.integers(0, 9)) == 0:
                line += data.draw(st.integers(1, 10**6))
            make = completion_params if kind == "complete" else inline_params
            method = "textDocument/" + ("completion" if kind == "complete" else "inlineCompletion")
            self.check_items(doc, line, ch, self.request(method, make(uri, line, ch)))
        elif kind == "cancel":
            line, ch = positions(data.draw, doc.text, self.encoding)
            msg_id = self.client.send_request(
                "textDocument/inlineCompletion", inline_params(doc.uri, line, ch)
            )
            self.client.notify("$/cancelRequest", {"id": msg_id})
            self.stats.requests += 1
            self.check_items(doc, line, ch, self.wait(msg_id, "cancelled inline"))
        elif kind == "malformed":  # unreadable params: answered with InvalidParams
            method = data.draw(st.sampled_from(["completion", "inlineCompletion"]))
            bad = data.draw(st.sampled_from(MALFORMED))
            params = {"textDocument": {"uri": doc.uri}, **bad} if isinstance(bad, dict) else bad
            reply = self.request("textDocument/" + method, params)
            assert reply.get("error", {}).get("code") == INVALID_PARAMS, reply
        elif kind == "close":
            self.client.notify("textDocument/didClose", {"textDocument": {"uri": doc.uri}})
            del self.docs[doc.uri]
        self.barrier_and_check()

    def send_text(self, text: str) -> None:
        self.stats.chars_sent += len(text)
        longest = max((e - s for s, e in lines(text)), default=0)
        self.stats.longest_line = max(self.stats.longest_line, longest)

    def close_all(self, check: bool = True) -> None:
        """Close this example's documents (and check the server forgot them)."""
        for uri in list(self.docs):
            if self.target.alive():
                self.client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
            del self.docs[uri]
        if check:
            self.barrier_and_check()


def _start(transport: str, model: Path, encoding: str, log: Path) -> Any:
    target = InProcess() if transport == "inprocess" else Subprocess(stderr=log)
    try:
        offered = ["utf-8", "utf-16"] if encoding == "utf-8" else ["utf-16"]
        caps = target.client.initialize({"modelPath": str(model)}, offered, 60)
        assert caps["positionEncoding"] == encoding
        target.client.wait_notification("window/logMessage", "loaded", 120)
    except BaseException:  # a server left running would keep pytest from exiting
        target.close()
        raise
    return target


@pytest.mark.parametrize(
    ("transport", "encoding", "share"),
    [("inprocess", "utf-16", 1.0), ("inprocess", "utf-8", 0.5), ("subprocess", "utf-16", 0.5)],
)
def test_fuzz_lsp(
    small_model_dir: Path, tmp_path: Path, transport: str, encoding: str, share: float
) -> None:
    log = tmp_path / "server.log"  # the subprocess's stderr, for post-mortems
    target = _start(transport, small_model_dir, encoding, log)
    stats = Stats()

    @settings(
        max_examples=max(1, int(EXAMPLES * share)),
        deadline=None,
        derandomize=not LONG_RUN,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def run(data: Any) -> None:
        stats.examples += 1
        fuzzer = Fuzzer(target, encoding, stats)
        try:
            for _ in range(data.draw(st.integers(3, STEPS))):
                fuzzer.step(data)
        except BaseException:  # leave nothing behind for the next example; keep the error
            fuzzer.close_all(check=False)
            raise
        fuzzer.close_all()

    try:
        run()
    finally:
        failures = [m for m in target.client.messages(LOG) if " failed at " in m]
        stats.engine_errors = len(failures)
        for message in failures:
            kind = message.strip().splitlines()[-1]
            stats.error_kinds[kind] = stats.error_kinds.get(kind, 0) + 1
        print(f"\nfuzz {transport}/{encoding}: {stats} (server log: {log})")
        target.close()
    assert stats.crashes == stats.hangs == stats.desyncs == 0
