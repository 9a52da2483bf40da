"""The server's request path in process, with the fake engine: fast and precise."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from lsp_fake_engine import BLOCK_LIMIT_S, BLOCKED, FakeEngine
from lsp_harness import bounded
from lsprotocol import types as lsp

from fillpoint.completion.documents import Document
from fillpoint.completion.types import (
    CancelToken,
    CompletionResult,
    InlineResult,
    Position,
    Span,
)
from fillpoint.lsp.options import parse_options
from fillpoint.lsp.server import (
    PREFETCH_DELAY_S,
    FillpointServer,
    Kind,
    _cursor_after,
    _prefer_utf8,
    create_server,
    skip_reason,
)

URI = "file:///work/example.py"
TEXT = "import os\nvalue = os.path\nval\nx = 1  # BLOCK\ny = 2  # BOOM\nz = 3  # ENGINE_ERROR\n"


@pytest.fixture
def server() -> Iterator[FillpointServer]:
    """A server with a loaded fake engine and one open document, no transport."""
    ls = create_server(engine_factory=FakeEngine)
    ls.engine = FakeEngine()
    ls.engine.load()
    ls.store.open(URI, TEXT, 1, "python")
    yield ls
    ls.stop()


async def _blocked_after(count: int) -> None:
    """Wait until the fake engine has blocked `count` times in total."""
    assert await bounded(asyncio.to_thread(BLOCKED.wait, count, BLOCK_LIMIT_S))


async def test_completion_runs_the_engine(server: FillpointServer) -> None:
    result = await bounded(server.run_engine("complete", URI, lsp.Position(2, 3)))
    assert isinstance(result, CompletionResult)
    assert [c.text for c in result.items] == ["value"]


async def test_inline_runs_the_engine(server: FillpointServer) -> None:
    result = await bounded(server.run_engine("inline", URI, lsp.Position(2, 3)))
    assert isinstance(result, InlineResult) and result.text == "value()"


@pytest.mark.parametrize(
    ("uri", "line", "character"),
    [
        ("file:///work/unknown.py", 0, 0),  # not open
        (URI, 99, 0),  # past the last line
        (URI, 0, 99),  # past the end of the line
    ],
)
async def test_bad_positions_get_no_result(
    server: FillpointServer, uri: str, line: int, character: int
) -> None:
    assert await bounded(server.run_engine("complete", uri, lsp.Position(line, character))) is None
    assert server.engine.calls == 0


async def test_engine_failures_cost_only_the_result(server: FillpointServer) -> None:
    for line in (4, 5):  # BOOM (a bug), ENGINE_ERROR
        assert await bounded(server.run_engine("complete", URI, lsp.Position(line, 3))) is None
    assert await bounded(server.run_engine("complete", URI, lsp.Position(2, 3))) is not None


async def test_no_model_no_result(server: FillpointServer) -> None:
    server.engine = None
    assert await bounded(server.run_engine("complete", URI, lsp.Position(2, 3))) is None


async def test_newer_request_supersedes_older(server: FillpointServer) -> None:
    before = BLOCKED.count
    older = asyncio.ensure_future(server.run_engine("complete", URI, lsp.Position(3, 2)))
    await _blocked_after(before + 1)
    newer = await bounded(server.run_engine("complete", URI, lsp.Position(2, 3)))
    assert await bounded(older) is None
    assert isinstance(newer, CompletionResult) and newer.items


async def test_completion_does_not_supersede_inline(server: FillpointServer) -> None:
    before = BLOCKED.count
    inline = asyncio.ensure_future(server.run_engine("inline", URI, lsp.Position(3, 2)))
    await _blocked_after(before + 1)
    other = asyncio.ensure_future(server.run_engine("complete", URI, lsp.Position(2, 3)))
    await asyncio.sleep(0)  # `other` is registered (and queued): it must not cancel `inline`
    assert not inline.done()
    newer_inline = await bounded(server.run_engine("inline", URI, lsp.Position(2, 3)))
    assert await bounded(inline) is None
    assert isinstance(newer_inline, InlineResult) and newer_inline.text
    assert isinstance(await bounded(other), CompletionResult)


async def test_cancelling_the_request_stops_the_worker(server: FillpointServer) -> None:
    before = BLOCKED.count
    task = asyncio.ensure_future(server.run_engine("complete", URI, lsp.Position(3, 2)))
    await _blocked_after(before + 1)
    task.cancel()  # what pygls does on $/cancelRequest
    with pytest.raises(asyncio.CancelledError):
        await task
    # One inference thread: this only runs once the cancelled call has stopped.
    assert isinstance(
        await bounded(server.run_engine("complete", URI, lsp.Position(2, 3))), CompletionResult
    )


async def test_debounce_skips_superseded_requests(server: FillpointServer) -> None:
    server.options = parse_options({"debounceMs": 200})[0]
    first = asyncio.ensure_future(server.run_engine("complete", URI, lsp.Position(2, 3)))
    await asyncio.sleep(0)  # `first` is now waiting out its debounce
    second = await bounded(server.run_engine("complete", URI, lsp.Position(2, 2)))
    assert await bounded(first) is None and second is not None
    assert server.engine.calls == 1


SETTLE_S = max(0.05, 10 * PREFETCH_DELAY_S)  # long enough for a prefetch to have started


async def _prefetched(server: FillpointServer, count: int) -> None:
    """Wait until the fake engine has been asked to prefetch `count` times."""
    while len(server.engine.prepared) < count:
        await asyncio.sleep(0.005)


async def test_an_edit_prefetches_at_the_cursor_once_the_user_pauses(
    server: FillpointServer,
) -> None:
    server.schedule_prefetch(URI, Position(2, 3))
    server.schedule_prefetch(URI, Position(2, 2))  # the next keystroke replaces the pending one
    await bounded(_prefetched(server, 1))
    await asyncio.sleep(SETTLE_S)
    assert [pos for _, pos in server.engine.prepared] == [Position(2, 2)]
    assert server.engine.prepared[0][0] == TEXT and server.engine.calls == 0


async def test_a_request_goes_before_a_pending_prefetch_which_resumes_after_it(
    server: FillpointServer,
) -> None:
    server.schedule_prefetch(URI, Position(2, 2))
    ran = server.run_engine("complete", URI, lsp.Position(2, 3))
    assert await bounded(ran) is not None
    assert server.engine.calls == 1 and server.engine.prepared == []  # the request went first
    await bounded(_prefetched(server, 1))  # the user still pauses: at the request's cursor
    await asyncio.sleep(SETTLE_S)
    assert server.engine.prepared == [(TEXT, Position(2, 3))]


async def test_a_request_that_cut_no_idle_work_starts_none(server: FillpointServer) -> None:
    assert await bounded(server.run_engine("complete", URI, lsp.Position(2, 3))) is not None
    await asyncio.sleep(SETTLE_S)
    assert server.engine.prepared == []


def _cut_by_held_requests(
    server: FillpointServer, monkeypatch: pytest.MonkeyPatch, *requests: tuple[Kind, lsp.Position]
) -> tuple[threading.Event, list[asyncio.Future[Any]]]:
    """Pending idle work cut by `requests`, which the fake engine holds until the returned
    event is set; their futures."""
    gate, complete = threading.Event(), server.engine.complete

    def held(doc: Document, pos: Position, cancel: CancelToken | None = None) -> CompletionResult:
        gate.wait(BLOCK_LIMIT_S)
        return complete(doc, pos, cancel)

    monkeypatch.setattr(server.engine, "complete", held)
    server.schedule_prefetch(URI, Position(2, 2))
    return gate, [asyncio.ensure_future(server.run_engine(k, URI, at)) for k, at in requests]


async def test_cut_idle_work_resumes_once_every_request_is_answered(
    server: FillpointServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, (first, second) = _cut_by_held_requests(
        server, monkeypatch, ("complete", lsp.Position(2, 3)), ("inline", lsp.Position(1, 3))
    )
    await asyncio.sleep(SETTLE_S)
    assert server.engine.prepared == []
    gate.set()
    assert await bounded(first) is not None and await bounded(second) is not None
    await bounded(_prefetched(server, 1))
    await asyncio.sleep(SETTLE_S)
    assert server.engine.prepared == [(TEXT, Position(1, 3))]  # the last request's cursor


async def test_cut_idle_work_does_not_resume_after_an_edit(
    server: FillpointServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, (ran,) = _cut_by_held_requests(server, monkeypatch, ("complete", lsp.Position(2, 3)))
    await asyncio.sleep(SETTLE_S)
    server.store.change(URI, 2, [(Span(Position(0, 0), Position(0, 0)), "#\n")])
    gate.set()  # the edit's own prefetch (scheduled by didChange) is where the cursor now is
    assert await bounded(ran) is not None
    await asyncio.sleep(SETTLE_S)
    assert server.engine.prepared == []


async def test_a_request_stops_a_running_prefetch(server: FillpointServer) -> None:
    before = BLOCKED.count
    server.schedule_prefetch(URI, Position(3, 2))  # a BLOCK line: the prefetch runs until told
    await _blocked_after(before + 1)
    result = await bounded(server.run_engine("complete", URI, lsp.Position(2, 3)))
    assert isinstance(result, CompletionResult) and result.items


async def test_a_failing_prefetch_costs_nothing(server: FillpointServer) -> None:
    for line in (4, 5):  # BOOM (a bug), ENGINE_ERROR
        server.schedule_prefetch(URI, Position(line, 3))
        await bounded(_prefetched(server, line - 3))
    await asyncio.sleep(SETTLE_S)
    assert await bounded(server.run_engine("complete", URI, lsp.Position(2, 3))) is not None


async def test_no_prefetch_when_the_option_is_off(server: FillpointServer) -> None:
    server.options = parse_options({"prefetch": False})[0]
    server.schedule_prefetch(URI, Position(2, 3))
    await asyncio.sleep(SETTLE_S)
    assert server.engine.prepared == []


def test_the_cursor_after_an_edit_is_the_end_of_the_inserted_text() -> None:
    doc = Document("file:///a.py", "ab\ncd\n", 1, "python")
    change = (Span(Position(1, 1), Position(1, 1)), "x\nyz")
    doc.apply_change(change[1], change[0])
    assert doc.text == "ab\ncx\nyzd\n"
    assert _cursor_after(doc, [change]) == Position(2, 2)
    assert _cursor_after(doc, [(None, "new text")]) is None  # a whole-document replacement
    assert _cursor_after(doc, []) is None


def test_skip_reasons() -> None:
    engine = FakeEngine()
    engine.load()
    doc = Document("file:///a.py", "x = 1\n", 1, "python")
    assert skip_reason(engine, doc, Position(0, 5)) is None
    assert skip_reason(engine, doc, Position(1, 0)) is None  # the empty last line
    assert "outside" in skip_reason(engine, doc, Position(0, 6))
    assert "outside" in skip_reason(engine, doc, Position(2, 0))
    assert "model" in skip_reason(FakeEngine(), doc, Position(0, 0))
    assert "not open" in skip_reason(engine, None, Position(0, 0))
    assert "empty" in skip_reason(engine, Document("file:///e.py", " \n", 1), Position(0, 0))
    markdown = Document("file:///a.md", "x = 1\n", 1, "markdown")
    assert "not a Python" in skip_reason(engine, markdown, Position(0, 0))
    unnamed = Document("untitled:Untitled-1", "x = 1\n", 1, "python")
    assert skip_reason(engine, unnamed, Position(0, 0)) is None
    no_language = Document("file:///a.pyi", "x = 1\n", 1, "")
    assert skip_reason(engine, no_language, Position(0, 0)) is None
    no_language_txt = Document("file:///a.txt", "x = 1\n", 1, "")
    assert "not a Python" in skip_reason(engine, no_language_txt, Position(0, 0))


def test_surrogate_pair_middle_is_outside() -> None:
    engine = FakeEngine()
    engine.load()
    doc = Document("file:///a.py", "s = '😀'\n", 1, "python", encoding="utf-16")
    assert skip_reason(engine, doc, Position(0, 5)) is None  # before the emoji
    assert "outside" in skip_reason(engine, doc, Position(0, 6))  # between its two halves
    assert skip_reason(engine, doc, Position(0, 7)) is None  # after it
    assert skip_reason(engine, doc, Position(0, 8)) is None  # end of line


@pytest.mark.parametrize(
    ("offered", "first"),
    [
        (["utf-16", "utf-8"], "utf-8"),
        (["utf-32", "utf-8", "utf-16"], "utf-8"),
        (["utf-16"], "utf-16"),
        (None, None),
    ],
)
def test_utf8_is_preferred_when_offered(offered: list[str] | None, first: str | None) -> None:
    caps = lsp.ClientCapabilities(general=lsp.GeneralClientCapabilities(position_encodings=offered))
    _prefer_utf8(caps)
    encodings = caps.general.position_encodings
    assert (encodings[0] if encodings else None) == first
