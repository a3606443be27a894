"""A small TCP proxy on loopback for injecting latency and cut connections (RELIABILITY.md).

It runs its own event loop in a thread, so that a test can block in other calls while the
proxy keeps forwarding. Each connection gets two pumps, one per direction. A pump handles
its chunks one at a time and in order, so a delayed chunk holds back the ones behind it,
which is what a slow network does to a TCP stream.

gRPC multiplexes all calls over one connection: delaying "half the calls" is done by
delaying about half of the client-to-server chunks (seeded), each of which carries one or
more calls.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

CHUNK = 65536


@dataclass
class ProxyStats:
    connections: int = 0
    delayed_chunks: int = 0
    chunks: int = 0
    cut: int = 0


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:<port> to `target`; both ends on loopback only."""

    target_host: str
    target_port: int
    delay_s: float = 0.0
    delay_share: float = 0.0
    seed: int = 0
    stats: ProxyStats = field(default_factory=ProxyStats)
    port: int = 0

    def __post_init__(self) -> None:
        if not ipaddress.ip_address(socket.gethostbyname(self.target_host)).is_loopback:
            raise ValueError(f"the proxy only forwards to loopback, not {self.target_host}")
        self._rng = random.Random(self.seed)
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        self._thread.start()
        server = self._call(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            self._call(self._server.wait_closed())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def slow(self, delay_s: float, share: float) -> None:
        """From now on, delay `share` of the client's chunks by `delay_s`."""
        self.delay_s, self.delay_share = delay_s, share

    def cut(self) -> None:
        """Close every open connection now (clients see a reset and reconnect)."""

        async def close_all() -> None:
            for writer in list(self._writers):
                writer.transport.abort()
                self.stats.cut += 1
            self._writers.clear()

        self._call(close_all())

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}
        await asyncio.gather(
            self._pump(client_r, server_w, delayed=True),
            self._pump(server_r, client_w, delayed=False),
            return_exceptions=True,
        )
        for writer in (client_w, server_w):
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, delayed: bool
    ) -> None:
        while chunk := await reader.read(CHUNK):  # ends at EOF or when the peer is cut
            self.stats.chunks += 1
            if delayed and self.delay_s and self._rng.random() < self.delay_share:
                self.stats.delayed_chunks += 1
                await asyncio.sleep(self.delay_s)
            writer.write(chunk)
            await writer.drain()
        writer.transport.abort()
