"""Errors of the storage package."""

from __future__ import annotations


class StorageError(Exception):
    """Base of the errors raised by storage/."""


class DatabaseUnavailable(StorageError):
    """Postgres could not be reached or dropped the connection; retrying later may succeed."""


class CacheUnavailable(StorageError):
    """Redis could not be reached, timed out or refused writes; Postgres stays the record."""
