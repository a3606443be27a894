"""Errors of the inference client. All derive from InferenceError."""

from __future__ import annotations


class InferenceError(Exception):
    """Triton could not classify a batch."""


class InferenceTimeout(InferenceError):
    """Every attempt ran past its deadline."""


class InferenceUnavailable(InferenceError):
    """The server or the model could not be reached (down, refusing, not loaded)."""


class InvalidInferenceResponse(InferenceError):
    """The server answered with outputs of the wrong shape."""


class CircuitOpenError(InferenceUnavailable):
    """Too many recent failures: calls fail fast until the breaker lets a trial through."""

    def __init__(self, retry_in_s: float) -> None:
        super().__init__(
            f"circuit open after repeated Triton failures; next try in {retry_in_s:.1f}s"
        )
        self.retry_in_s = retry_in_s
