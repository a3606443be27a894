"""The fault harness's TCP proxy (tests/faults/proxy.py), against a loopback echo server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.faults.proxy import TcpProxy

pytestmark = pytest.mark.unit


@pytest.fixture
def echo() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    running = True

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while running:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    running = False
    thread.join(2)
    server.close()


def roundtrip(port: int, payload: bytes) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        began = time.monotonic()
        conn.sendall(payload)
        got = b""
        while len(got) < len(payload):
            got += conn.recv(65536)
        return got, time.monotonic() - began


def test_bytes_pass_through_unchanged_and_slow_chunks_are_delayed(echo: int) -> None:
    proxy = TcpProxy("127.0.0.1", echo, seed=1).start()
    try:
        got, fast = roundtrip(proxy.port, b"ping" * 1000)
        assert got == b"ping" * 1000
        proxy.slow(0.3, share=1.0)
        got, slow = roundtrip(proxy.port, b"pong")
        assert got == b"pong"
        assert slow >= 0.3 > fast
        assert proxy.stats.delayed_chunks == 1
        assert proxy.stats.connections == 2
    finally:
        proxy.stop()


def test_cut_closes_open_connections(echo: int) -> None:
    proxy = TcpProxy("127.0.0.1", echo).start()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as conn:
            conn.sendall(b"x")
            assert conn.recv(10) == b"x"
            proxy.cut()
            try:
                data = conn.recv(10)
            except ConnectionResetError:
                data = b""
            assert data == b""  # EOF or a reset: the connection is gone
        assert proxy.stats.cut >= 1
    finally:
        proxy.stop()


def test_only_loopback_targets() -> None:
    with pytest.raises(ValueError, match="loopback"):
        TcpProxy("10.0.0.1", 80)
