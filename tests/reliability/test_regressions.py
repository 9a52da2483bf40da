"""Regressions for server bugs the reliability tests found (no model needed)."""

from __future__ import annotations

import pytest
from reliability_rpc import InProcess, completion_params, open_params

URI = "file:///work/regress.py"


def _edit(line: int, start: int, end: int, text: str) -> dict:
    rng = {"start": {"line": line, "character": start}, "end": {"line": line, "character": end}}
    return {"range": rng, "text": text}


@pytest.mark.parametrize(
    ("before", "change", "after"),
    [
        # pygls clamped an end past the line end in place (to one unit short), so the
        # store replaced "" instead of "a" and kept the "a": "(x)a".
        ("a", _edit(0, 0, 2, "(x)"), "(x)"),
        ("ab\ncd", _edit(0, 1, 99, "Z"), "aZ\ncd"),
        # pygls' own copy cannot encode a lone surrogate in UTF-16; the store must not care.
        ("x\ud800y\n", _edit(0, 2, 3, "z"), "x\ud800z\n"),
    ],
)
def test_did_change_applies_the_clients_range(before: str, change: dict, after: str) -> None:
    target = InProcess()
    try:
        client = target.client
        client.initialize({"modelPath": "/nonexistent/model"}, None, 30)
        client.notify("textDocument/didOpen", open_params(URI, before))
        params = {"textDocument": {"uri": URI, "version": 2}, "contentChanges": [change]}
        client.notify("textDocument/didChange", params)
        # Answered only after the edit above was applied (pygls handles messages in order).
        client.request("textDocument/completion", completion_params(URI, 0, 0), 30)
        assert target.server.store.get(URI).text == after
    finally:
        target.close()


@pytest.mark.parametrize(
    "params",
    [
        {"textDocument": {"uri": URI}, "position": {"line": -1, "character": 0}},
        {"textDocument": {"uri": URI}, "position": {"line": 2**31, "character": 0}},
        {"textDocument": {"uri": URI}},
        None,
    ],
)
def test_unreadable_request_gets_an_error_response(params: object) -> None:
    """pygls dropped requests it could not deserialize: the client waited forever."""
    target = InProcess()
    try:
        client = target.client
        client.initialize({"modelPath": "/nonexistent/model"}, None, 30)
        client.notify("textDocument/didOpen", open_params(URI, "import os\nos.pa"))
        reply = client.request("textDocument/completion", params, 30)
        assert reply["error"]["code"] == -32602  # InvalidParams
        ok = client.request("textDocument/completion", completion_params(URI, 1, 5), 30)
        assert ok["result"]["items"] == []  # and the server goes on (no model here)
    finally:
        target.close()
