"""The real server wiring around the fake engine, run as a subprocess by the e2e tests."""

from __future__ import annotations

import asyncio
import logging
import sys

from lsp_fake_engine import BLOCK_LIMIT_S, BLOCKED, LOAD_GATE, FakeEngine

from fillpoint.lsp.server import FillpointServer, create_server


def main() -> None:
    """Serve over stdio with two test-only methods to synchronise with the engine."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    server = create_server(engine_factory=FakeEngine)

    @server.feature("fake/releaseLoad")
    def release_load(ls: FillpointServer, params: object) -> None:
        LOAD_GATE.set()

    @server.feature("fake/waitBlocked")
    async def wait_blocked(ls: FillpointServer, params: object) -> bool:
        count = int(getattr(params, "count", 1))  # pygls gives unknown params as an object
        return await asyncio.to_thread(BLOCKED.wait, count, BLOCK_LIMIT_S)

    server.start_io()
    raise SystemExit(0 if server.shutdown_requested else 1)


if __name__ == "__main__":
    main()
