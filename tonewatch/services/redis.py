"""Redis from Debian's redis-server package, append-only, bound to loopback."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import redis

from tonewatch.services.base import LocalService
from tonewatch.services.exceptions import ProbeError
from tonewatch.services.process import Launch
from tonewatch.services.system_packages import apt_install


class RedisService(LocalService):
    name = "redis"

    @property
    def port(self) -> int:
        return urlsplit(self.settings.redis_url).port or 6379

    def _binary(self) -> str | None:
        return shutil.which("redis-server")

    def install(self) -> None:
        if self._binary() is None:
            apt_install("redis-server")

    def prepare(self) -> None:
        (self.run_dir / "data").mkdir(parents=True, exist_ok=True)

    def launch(self) -> Launch:
        host = urlsplit(self.settings.redis_url).hostname or "127.0.0.1"
        argv = [
            self._binary() or "redis-server",
            "--bind", host,
            "--port", str(self.port),
            "--dir", str(self.run_dir / "data"),
            "--appendonly", "yes",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip
        return Launch(argv=argv, env={})

    def probe(self) -> str:
        client = redis.Redis.from_url(
            self.settings.redis_url, socket_timeout=self.probe_timeout_s,
            socket_connect_timeout=self.probe_timeout_s,
        )  # fmt: skip
        try:
            info = client.info("server")
        except redis.RedisError as exc:
            raise ProbeError(f"redis: {exc}") from exc
        finally:
            client.close()
        return str(info["redis_version"])
