"""The stdio transport that reads stdin on the event loop (`fillpoint.lsp.stdio`)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

from lsp_harness import SERVE, bounded

from fillpoint.lsp.stdio import watchable


def test_watchable_only_for_pipes_apart_from_stdout(tmp_path: Path) -> None:
    read, write = os.pipe()
    out_r, out_w = os.pipe()
    with (
        open(read, "rb") as stdin,
        open(write, "wb") as pipe_w,
        open(out_r, "rb"),
        open(out_w, "wb") as stdout,
        (tmp_path / "f").open("wb+") as file,
    ):
        assert watchable(stdin, stdout) == (sys.platform != "win32")
        assert not watchable(file, stdout)  # a regular file: pygls' reader
        assert not watchable(stdin, pipe_w)  # the same pipe both ways
    a, b = socket.socketpair()
    with a, b, a.makefile("rb") as sock_in, a.makefile("wb") as sock_out:
        assert not watchable(sock_in, sock_out)  # one socket both ways: stdout would block
    assert not watchable(object(), object())  # type: ignore[arg-type]


def _message(payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def test_server_answers_over_pipes_and_ends_when_stdin_closes() -> None:
    server = await asyncio.create_subprocess_exec(
        *SERVE,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert server.stdin is not None and server.stdout is not None
    request = {"jsonrpc": "2.0", "id": 1, "method": "fillpoint/noSuchMethod", "params": None}
    message = _message(request)
    # a message split across writes is read whole
    server.stdin.write(message[:10])
    await server.stdin.drain()
    await asyncio.sleep(0.05)
    server.stdin.write(message[10:])
    await server.stdin.drain()
    header = await bounded(server.stdout.readuntil(b"\r\n\r\n"))
    length = int(header.split(b":")[1].split(b"\r\n")[0])
    answer = json.loads(await bounded(server.stdout.readexactly(length)))
    assert answer["id"] == 1 and "error" in answer  # answered: unknown method
    server.stdin.close()  # the client went away without exit
    assert await bounded(server.wait()) == 1  # no shutdown request: LSP's status 1
