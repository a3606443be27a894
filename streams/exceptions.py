"""Errors of the stream processing package."""

from __future__ import annotations


class StreamError(Exception):
    """Base of the errors raised by streams/."""


class InvalidMessage(StreamError):
    """A record that is not a valid input message; it goes to the dead-letter topic.

    `reason` is a short machine-readable cause (e.g. `invalid_json`), `detail` says what
    exactly is wrong, for the person reading the dead letter.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class StalledPartition(StreamError):
    """A partition kept its lag without progress through every in-process recovery."""
