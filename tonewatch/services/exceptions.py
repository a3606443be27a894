"""Errors raised while installing, starting or probing the local services."""

from __future__ import annotations

from pathlib import Path


class ServiceError(Exception):
    """Base class for local service failures."""


class MissingDependencyError(ServiceError):
    """A system package or tool the service needs is absent and cannot be installed here."""

    def __init__(self, what: str, command: str) -> None:
        super().__init__(f"{what} is missing; install it with: {command}")
        self.command = command


class ServiceStartError(ServiceError):
    """A service did not become ready. The message names its log file."""

    def __init__(self, name: str, reason: str, log_path: Path, log_tail: str = "") -> None:
        message = f"{name} failed to start: {reason}. See its log: {log_path}"
        if log_tail:
            message += "\n--- last lines of the log ---\n" + log_tail
        super().__init__(message)
        self.name = name
        self.log_path = log_path


class ProbeError(ServiceError):
    """A service did not answer its readiness probe."""
