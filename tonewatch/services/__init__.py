"""Local launchers for the real services: Kafka, Redis, Postgres and Triton."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tonewatch.config import Settings
from tonewatch.services.base import LocalService, ServiceStatus
from tonewatch.services.kafka import KafkaService
from tonewatch.services.postgres import PostgresService
from tonewatch.services.redis import RedisService
from tonewatch.services.triton import TritonService

SERVICE_TYPES: dict[str, type[LocalService]] = {
    service.name: service
    for service in (KafkaService, RedisService, PostgresService, TritonService)
}
SERVICE_NAMES = tuple(SERVICE_TYPES)


def select(settings: Settings, names: Iterable[str] | None = None) -> list[LocalService]:
    """The chosen services (all by default), in a fixed order."""
    wanted = set(names or SERVICE_NAMES)
    unknown = wanted - set(SERVICE_NAMES)
    if unknown:
        raise ValueError(f"unknown service(s): {', '.join(sorted(unknown))}")
    return [SERVICE_TYPES[name](settings) for name in SERVICE_NAMES if name in wanted]


def up(
    settings: Settings,
    names: Iterable[str] | None = None,
    on_ready: Callable[[ServiceStatus, bool], None] | None = None,
) -> list[ServiceStatus]:
    """Start what is not running and wait until every service answers; idempotent.

    All services are spawned first and then awaited, so their start-ups overlap.
    """
    services = select(settings, names)
    spawned = {service.name: service.start() for service in services}
    statuses = []
    for service in services:
        service.wait_ready(settings.service_start_timeout_s)
        status = service.status()
        statuses.append(status)
        if on_ready:
            on_ready(status, spawned[service.name])
    return statuses


def down(settings: Settings, names: Iterable[str] | None = None) -> dict[str, bool]:
    """Stop our own processes (never a server someone else started). Name -> was running."""
    return {service.name: service.stop() for service in reversed(select(settings, names))}


def status(settings: Settings, names: Iterable[str] | None = None) -> list[ServiceStatus]:
    return [service.status() for service in select(settings, names)]


__all__ = ["SERVICE_NAMES", "LocalService", "ServiceStatus", "down", "select", "status", "up"]
