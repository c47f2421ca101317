"""Running an EngineServer on its own event loop in a background thread.

Used by ``ditserve demo``, by benchmarks and by tests: the caller keeps its own
thread (and event loop, if any) and talks to the server over gRPC like any client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from engine_service.config import ServerConfig
from engine_service.runtime.engine import AsyncEngine
from engine_service.server.app import EngineServer


class BackgroundServer:
    """``with BackgroundServer(engine) as server: Client(server.address)...``"""

    def __init__(self, engine: AsyncEngine, config: ServerConfig | None = None):
        self.server = EngineServer(engine, config or ServerConfig(host="127.0.0.1", port=0))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ditserve-server-loop", daemon=True)

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def engine(self) -> AsyncEngine:
        return self.server.engine

    def call(self, coroutine, timeout: float | None = None):
        """Run ``coroutine`` on the server's loop and wait for its result."""
        future: concurrent.futures.Future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    def start(self, *, warm: bool = True) -> BackgroundServer:
        """Start listening; with ``warm=False`` the caller runs ``call(server.warm_up())`` later."""
        self._thread.start()
        self.call(self.server.listen())
        if warm:
            self.call(self.server.warm_up())
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        try:
            self.call(self.server.stop(grace_s))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
