"""PostgreSQL from Debian's packages: our own cluster under var/, plus the project's role and DB.

Postgres refuses to run as root, so when we are root the cluster belongs to the `postgres`
system user that the Debian package creates.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from tonewatch.services.base import LocalService
from tonewatch.services.exceptions import ProbeError, ServiceStartError
from tonewatch.services.process import Launch
from tonewatch.services.system_packages import apt_install

SUPERUSER = "postgres"


def _reachable_by(path: Path, user: str) -> bool:
    """Whether `user` may traverse every directory down to `path` (write access aside)."""
    uid = pwd.getpwnam(user).pw_uid
    for directory in (path, *path.parents):
        if not directory.exists():
            continue
        mode = directory.stat()
        if not (
            mode.st_mode & stat.S_IXOTH or (mode.st_uid == uid and mode.st_mode & stat.S_IXUSR)
        ):
            return False
    return True


def _bin_dir() -> Path | None:
    """The newest installed server's bin directory (Debian keeps one per major version)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return candidates[-1].parent if candidates else None


class PostgresService(LocalService):
    name = "postgres"

    @property
    def url(self) -> URL:
        return make_url(self.settings.database_url)

    @property
    def port(self) -> int:
        return int(self.url.port or 5432)

    @property
    def cluster_dir(self) -> Path:
        """Where the cluster lives: var/postgres, unless the server's OS user cannot reach it.

        As root, the cluster belongs to `postgres`, which cannot enter a checkout under a
        private directory such as /root. Then it lives in /var/lib/tonewatch (one folder
        per checkout) and var/postgres/cluster links to it.
        """
        user = self._os_user()
        if user is None or _reachable_by(self.run_dir.parent, user):
            return self.run_dir
        digest = hashlib.sha256(str(self.run_dir).encode()).hexdigest()[:12]
        return Path("/var/lib/tonewatch") / f"postgres-{digest}"

    @property
    def data_dir(self) -> Path:
        return self.cluster_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.cluster_dir / "socket"

    def _os_user(self) -> str | None:
        return SUPERUSER if os.geteuid() == 0 else None

    def stop_signal(self) -> signal.Signals:
        return signal.SIGINT  # "fast" shutdown: SIGTERM would wait for every client to leave

    def install(self) -> None:
        if _bin_dir() is None:
            apt_install("postgresql")

    def prepare(self) -> None:
        bin_dir = _bin_dir()
        assert bin_dir is not None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        user = self._os_user()
        if user:
            shutil.chown(self.cluster_dir, user)
            shutil.chown(self.socket_dir, user)
        link = self.run_dir / "cluster"
        if self.cluster_dir != self.run_dir and not link.is_symlink():
            link.symlink_to(self.cluster_dir)
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(self.data_dir, user)
        argv = [
            str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
            "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]  # fmt: skip
        result = subprocess.run(argv, user=user, capture_output=True, text=True)
        if result.returncode != 0:
            self.process.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.process.log_path.open("a") as log:
                log.write(result.stdout + result.stderr)
            raise ServiceStartError(
                self.name, "initdb failed", self.process.log_path, result.stderr
            )

    def launch(self) -> Launch:
        bin_dir = _bin_dir()
        assert bin_dir is not None
        argv = [
            str(bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-k", str(self.socket_dir),
            "-c", f"listen_addresses={self.url.host or '127.0.0.1'}",
            "-c", "max_connections=200",
            "-c", "fsync=on",
            # Benchmarks time an alert to its commit: pg_xact_commit_timestamp(xmin).
            "-c", "track_commit_timestamp=on",
        ]  # fmt: skip
        return Launch(argv=argv, env={}, user=self._os_user())

    def _admin_connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=SUPERUSER if self._os_user() else getpass.getuser(),
            dbname="postgres",
            connect_timeout=int(self.probe_timeout_s),
            autocommit=True,
        )

    def probe(self) -> str:
        """Answer as the project's own role over TCP, falling back to the admin socket."""
        try:
            with psycopg.connect(
                host=self.url.host, port=self.port, user=self.url.username,
                password=self.url.password, dbname=self.url.database,
                connect_timeout=int(self.probe_timeout_s),
            ) as conn:  # fmt: skip
                row = conn.execute("SELECT version()").fetchone()
        except psycopg.Error as app_error:
            try:
                with self._admin_connect() as conn:
                    row = conn.execute("SELECT version()").fetchone()
            except psycopg.Error:
                raise ProbeError(f"postgres: {app_error}".strip()) from app_error
        assert row is not None
        return str(row[0])

    def after_ready(self) -> None:
        """Create the role and database named in TONEWATCH_DATABASE_URL (idempotent)."""
        url = self.url
        if not (url.username and url.database):
            raise ServiceStartError(
                self.name, "TONEWATCH_DATABASE_URL names no user or database", self.process.log_path
            )
        with self._admin_connect() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (url.username,)
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                    sql.SQL(verb), sql.Identifier(url.username), sql.Literal(url.password)
                )
            )
            if not conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)
            ).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(url.database), sql.Identifier(url.username)
                    )
                )
