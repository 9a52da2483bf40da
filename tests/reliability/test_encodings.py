"""Position encodings: UTF-16 by default, UTF-8 when offered; edit ranges right in both."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_rpc import Subprocess, completion_params, inline_params, open_params

URI = "file:///work/encodings.py"
STEP_S = 30.0
# Before the cursor on the same line: astral emoji (2 UTF-16 units, 4 bytes), a skin-tone
# modifier sequence, a combining acute (1 unit, 2 bytes) and a precomposed é.
LINES = [
    "import os\n",
    "\n",
    'label = "😀👍🏽e\u0301é"; path = os.pa',
    "\n",
    "naïve_total = 1\n",
    't = "🐍e\u0301"; naï',
]


def units(text: str, encoding: str) -> int:
    """Column of the end of `text` in an LSP position encoding."""
    if encoding == "utf-16":
        return len(text.encode("utf-16-le")) // 2
    return len(text.encode("utf-8"))


@pytest.mark.parametrize(
    ("offered", "encoding"),
    [
        (None, "utf-16"),
        (["utf-16"], "utf-16"),
        (["utf-8", "utf-16"], "utf-8"),
        (["utf-32", "utf-8"], "utf-8"),
    ],
)
def test_completion_ranges_in_both_encodings(
    small_model_dir: Path, offered: list[str] | None, encoding: str
) -> None:
    server = Subprocess()
    try:
        client = server.client
        caps = client.initialize({"modelPath": str(small_model_dir)}, offered, STEP_S)
        assert caps["positionEncoding"] == encoding
        client.wait_notification("window/logMessage", "loaded", 120)
        text = "".join(LINES)
        client.notify("textDocument/didOpen", open_params(URI, text))
        checked = 0
        for line_no, partial in ((2, "pa"), (5, "naï")):
            line = LINES[line_no].rstrip("\n")
            cursor = units(line, encoding)
            start = units(line[: len(line) - len(partial)], encoding)
            params = completion_params(URI, line_no, cursor)
            items = client.request("textDocument/completion", params, STEP_S)["result"]["items"]
            for item in items:
                rng = item["textEdit"]["range"]
                assert rng["start"] == {"line": line_no, "character": start}, (item, encoding)
                assert rng["end"] == {"line": line_no, "character": cursor}
            checked += bool(items)
            params = inline_params(URI, line_no, cursor)
            for item in client.request("textDocument/inlineCompletion", params, STEP_S)["result"][
                "items"
            ]:
                assert item["range"]["start"] == {"line": line_no, "character": cursor}
            # One unit into the emoji is inside a character in both encodings: no position.
            emoji_mid = units(line[: line.index("😀") if "😀" in line else 0], encoding) + 1
            params = completion_params(URI, line_no, emoji_mid)
            if "😀" in line:
                reply = client.request("textDocument/completion", params, STEP_S)
                assert reply["result"]["items"] == []
        assert checked, "the model offered nothing to check"
    finally:
        assert server.close() == 0
