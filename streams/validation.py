"""Raw bytes from a source topic -> a validated InputMessage, or the reason it is not one.

Input topics carry raw bytes on purpose: faust acks and drops a record that fails to decode
on a typed topic, so decoding happens here, where a failure can reach the dead-letter topic.
"""

from __future__ import annotations

import json
from typing import Final

from pydantic import ValidationError

from streams.exceptions import InvalidMessage
from tonewatch.contracts import InputMessage, Source

# Deeper JSON than this is refused before pydantic sees it (meta is for labels, not trees).
MAX_DEPTH: Final = 16


def parse(raw: bytes | None, source: Source) -> InputMessage:
    """Decode and validate one record of the `source` topic; raises InvalidMessage."""
    if not raw:
        raise InvalidMessage("empty", "the record has no payload")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(
            "bad_encoding", f"not UTF-8: {exc.reason} at byte {exc.start}"
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidMessage(
            "invalid_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise InvalidMessage("invalid_json", "nested too deeply to parse") from exc
    if not isinstance(data, dict):
        raise InvalidMessage(
            "invalid_message", f"expected a JSON object, got {type(data).__name__}"
        )
    _check_storable(data, "$", 0)
    try:
        message = InputMessage.model_validate(data)
    except ValidationError as exc:
        raise InvalidMessage(_reason(exc), _summary(exc)) from exc
    if message.source != source:
        raise InvalidMessage("wrong_topic", f"a {message.source!r} message on the {source!r} topic")
    return message


def _check_storable(value: object, path: str, depth: int) -> None:
    """Refuse what Postgres and Triton cannot take: NUL, lone surrogates, deep nesting."""
    if depth > MAX_DEPTH:
        raise InvalidMessage("invalid_message", f"{path}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidMessage("invalid_text", f"{path}: contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidMessage(
                "bad_encoding", f"{path}: lone surrogate at character {exc.start}"
            ) from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, path, depth + 1)
            _check_storable(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_storable(item, f"{path}[{index}]", depth + 1)


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    if first["loc"] == ("text",) and first["type"] == "string_too_long":
        return "text_too_long"
    return "invalid_message"


def _summary(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "message"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
