"""Errors of the inference client. All derive from InferenceError.

The split tells a caller what to do next. An InferenceUnavailable (this includes timeouts and
an open circuit) means Triton cannot serve right now, so wait and try again. Any other
InferenceError means the request or the model is wrong, and retrying will not help.
"""

from __future__ import annotations


class InferenceError(Exception):
    """Triton could not classify a batch, and trying again will not change that."""


class InferenceUnavailable(InferenceError):
    """The server or the model cannot serve now: down, refusing, overloaded or not loaded."""


class InferenceTimeout(InferenceUnavailable):
    """Every attempt ran past its deadline."""


class InvalidInferenceResponse(InferenceError):
    """The server answered, but its outputs do not match the model contract."""


class CircuitOpenError(InferenceUnavailable):
    """Recent calls kept failing, so this one fails fast until the breaker lets a trial through.

    `retry_in_s` is how long until the breaker allows the next trial call.
    """

    def __init__(self, retry_in_s: float, target: str = "the server") -> None:
        super().__init__(
            f"{target}: circuit open after repeated failures; next try in {retry_in_s:.1f}s"
        )
        self.retry_in_s = retry_in_s
        self.target = target
