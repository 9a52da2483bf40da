"""A raw JSON-RPC client for reliability tests: exact bytes on the wire, every wait bounded.

The client writes the frames itself (so a test can send lone surrogates as `\\ud800`
escapes, NUL bytes and megabyte lines exactly), and a reader thread files the server's
answers by id. Two transports drive the same `create_server()`:

- `Subprocess`: `python -m fillpoint.lsp serve`, for /proc checks and crash detection;
- `InProcess`: the server's own stdio loop (`start_io`) on a thread, over OS pipes, so a
  test can read the server's DocumentStore directly. It is race-free to read after any
  request has been answered: pygls handles notifications synchronously, in order, before
  it reads the next message, so every edit sent before that request is already applied.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

SERVE = [sys.executable, "-m", "fillpoint.lsp", "serve"]
MODEL_ENV = "FILLPOINT_MODEL"
SERVER_ENV = {k: v for k, v in os.environ.items() if k != MODEL_ENV}
REQUEST_CANCELLED = -32800


class ServerGone(AssertionError):
    """The server closed its output (exited or crashed)."""


class RpcClient:
    """Content-Length framed JSON-RPC over two byte streams."""

    def __init__(self, to_server: IO[bytes], from_server: IO[bytes]) -> None:
        self._out = to_server
        self._in = from_server
        self._cond = threading.Condition()
        self._responses: dict[int, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.settings: dict[str, Any] = {}  # the answer to workspace/configuration
        self.closed = False
        self._next_id = 0
        self._write_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_loop, name="rpc-reader", daemon=True)
        self._reader.start()

    def _read_frame(self) -> dict[str, Any] | None:
        """One message, or None at end of stream."""
        length = None
        while True:
            line = self._in.readline()
            if not line:
                return None
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("ascii").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        body = self._in.read(length or 0)
        if length is None or len(body) < length:
            return None
        return json.loads(body)

    def _read_loop(self) -> None:
        try:
            while (msg := self._read_frame()) is not None:
                if "method" in msg and "id" in msg:
                    self._answer_server_request(msg)
                elif "method" in msg:
                    with self._cond:
                        self.notifications.append(msg)
                        self._cond.notify_all()
                else:
                    with self._cond:
                        self._responses[msg["id"]] = msg
                        self._cond.notify_all()
        except (OSError, ValueError):  # the stream broke: same as end of stream for the tests
            pass
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def _answer_server_request(self, msg: dict[str, Any]) -> None:
        """Progress bars and configuration pulls, as an editor would answer them."""
        result: Any = None
        if msg["method"] == "workspace/configuration":
            result = [self.settings for _ in msg["params"]["items"]]
        self._send({"jsonrpc": "2.0", "id": msg["id"], "result": result})

    def _send(self, msg: dict[str, Any]) -> None:
        # ensure_ascii: lone surrogates travel as \\udXXX escapes, which JSON allows.
        body = json.dumps(msg).encode("ascii")
        with self._write_lock:
            try:
                self._out.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
                self._out.flush()
            except (BrokenPipeError, ValueError) as exc:
                raise ServerGone(f"cannot write to the server: {exc!r}") from exc

    def notify(self, method: str, params: Any) -> None:
        """Send a notification."""
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def send_request(self, method: str, params: Any) -> int:
        """Send a request; its id."""
        with self._cond:
            self._next_id += 1
            msg_id = self._next_id
        self._send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return msg_id

    def wait(self, msg_id: int, timeout: float) -> dict[str, Any]:
        """The response to a request; fails if it does not come in time or the server dies."""
        with self._cond:
            done = self._cond.wait_for(
                lambda: msg_id in self._responses or self.closed, timeout=timeout
            )
            if msg_id in self._responses:
                return self._responses.pop(msg_id)
        if not done:
            raise AssertionError(f"request {msg_id} not answered within {timeout} s (hang)")
        raise ServerGone(f"server closed its output before answering request {msg_id}")

    def request(self, method: str, params: Any, timeout: float) -> dict[str, Any]:
        """Send a request and wait for its response."""
        return self.wait(self.send_request(method, params), timeout)

    def wait_notification(self, method: str, text: str, timeout: float) -> dict[str, Any]:
        """The first notification of `method` whose message contains `text`."""

        def found() -> dict[str, Any] | None:
            for n in self.notifications:
                if n["method"] == method and text in n["params"].get("message", ""):
                    return n
            return None

        with self._cond:
            self._cond.wait_for(lambda: found() is not None or self.closed, timeout=timeout)
            hit = found()
        if hit is None:
            raise AssertionError(f"no {method} mentioning {text!r} within {timeout} s")
        return hit

    def messages(self, method: str) -> list[str]:
        """The texts of the notifications of one method received so far."""
        with self._cond:
            return [n["params"]["message"] for n in self.notifications if n["method"] == method]

    def initialize(
        self, options: dict[str, Any] | None, encodings: list[str] | None, timeout: float
    ) -> dict[str, Any]:
        """initialize + initialized; the server's capabilities."""
        caps: dict[str, Any] = {
            "window": {"workDoneProgress": True},
            "workspace": {"configuration": True},
            "textDocument": {"completion": {}, "inlineCompletion": {}},
        }
        if encodings is not None:
            caps["general"] = {"positionEncodings": encodings}
        params = {"processId": None, "capabilities": caps, "initializationOptions": options}
        reply = self.request("initialize", params, timeout)
        self.notify("initialized", {})
        return reply["result"]["capabilities"]

    def shutdown(self, timeout: float) -> None:
        """shutdown + exit."""
        self.request("shutdown", None, timeout)
        self.notify("exit", None)


class Subprocess:
    """The real server in a child process."""

    def __init__(self, args: list[str] | None = None, stderr: Path | None = None) -> None:
        err = open(stderr, "wb") if stderr else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            SERVE + (args or []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=SERVER_ENV,
        )
        if stderr:
            err.close()
        self.pid = self.proc.pid
        self.client = RpcClient(self.proc.stdin, self.proc.stdout)
        self.server = None

    def alive(self) -> bool:
        """The process is still running."""
        return self.proc.poll() is None

    def close(self, timeout: float = 10.0) -> int | None:
        """Shut down politely, then make sure the process is gone; its exit status."""
        if self.alive():
            with contextlib.suppress(AssertionError):
                self.client.shutdown(timeout)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        return self.proc.returncode


class InProcess:
    """`create_server()` running its stdio loop on a thread, over pipes."""

    def __init__(self) -> None:
        from fillpoint.lsp.server import create_server

        self.server = create_server()
        c2s_r, c2s_w = os.pipe()
        s2c_r, s2c_w = os.pipe()
        self._server_in = os.fdopen(c2s_r, "rb")
        self._server_out = os.fdopen(s2c_w, "wb")
        self._to_server = os.fdopen(c2s_w, "wb")
        self._from_server = os.fdopen(s2c_r, "rb")
        self.thread = threading.Thread(target=self._serve, name="fillpoint-server", daemon=True)
        self.thread.start()
        self.client = RpcClient(self._to_server, self._from_server)
        self.pid = os.getpid()

    def _serve(self) -> None:
        with contextlib.suppress(SystemExit):  # pygls ends `exit` with sys.exit
            self.server.start_io(self._server_in, self._server_out)

    def alive(self) -> bool:
        """The server's loop is still running."""
        return self.thread.is_alive() and not self.client.closed

    def close(self, timeout: float = 10.0) -> None:
        """shutdown + exit, then close the pipes."""
        if self.alive():
            with contextlib.suppress(AssertionError):
                self.client.shutdown(timeout)
        with contextlib.suppress(OSError):
            self._to_server.close()  # end of input also ends the loop
        self.thread.join(timeout)
        self.server.stop()
        for stream in (self._server_in, self._server_out, self._from_server):
            with contextlib.suppress(OSError):
                stream.close()


def completion_params(uri: str, line: int, character: int) -> dict[str, Any]:
    """textDocument/completion parameters."""
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}


def inline_params(uri: str, line: int, character: int) -> dict[str, Any]:
    """textDocument/inlineCompletion parameters (invoked)."""
    return {**completion_params(uri, line, character), "context": {"triggerKind": 1}}


def open_params(uri: str, text: str, version: int = 1) -> dict[str, Any]:
    """textDocument/didOpen parameters for a Python document."""
    item = {"uri": uri, "languageId": "python", "version": version, "text": text}
    return {"textDocument": item}
