"""Request guards that run before FastAPI reads a body (RELIABILITY.md B2, S4).

Starlette sets no body limit, and the json module turns 10k-deep nesting into a
RecursionError and a 5,000-digit number into a ValueError: both would be 500s. This ASGI
middleware reads each body once, bounded (chunked uploads included), checks JSON bodies,
and hands the same bytes on, so every handler sees a body that is small and sane.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
MAX_NUMBER_CHARS: Final = 40
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


class BadJson(ValueError):
    """A JSON body we refuse: the message says why."""


def check_json(body: bytes, max_depth: int) -> Any:
    """Parse a JSON body strictly: bounded depth, no duplicate keys, no huge numbers, no
    NaN or Infinity. Returns the value; raises BadJson."""
    depth = 0
    for bracket in _BRACKETS.finditer(_STRINGS.sub(b'""', body)):
        depth += 1 if bracket.group() in (b"[", b"{") else -1
        if depth > max_depth:
            raise BadJson(f"JSON nested deeper than {max_depth} levels")
    try:
        value = json.loads(
            body,
            object_pairs_hook=_unique_keys,
            parse_int=_bounded(int),
            parse_float=_bounded(float),
            parse_constant=_no_constant,
        )
    except BadJson:
        raise
    except (ValueError, RecursionError) as exc:
        raise BadJson(f"invalid JSON: {exc}") from None
    _no_lone_surrogates(value)
    return value


def _no_lone_surrogates(value: Any) -> None:
    """`"\\ud800"` is valid JSON but no valid text: Postgres and UTF-8 would fail later."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:
                raise BadJson("a string holds a lone surrogate (\\ud800-\\udfff)") from None
        elif isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item


def _unique_keys(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BadJson(f"duplicate key {key!r} in a JSON object")
        result[key] = value
    return result


def _bounded(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        if len(text) > MAX_NUMBER_CHARS:
            raise BadJson(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
        return kind(text)

    return parse


def _no_constant(name: str) -> None:
    raise BadJson(f"{name} is not JSON")


class BodyGuard:
    """413 past `max_bytes` (declared or streamed), 415 for a non-JSON body on /v1, 400 for
    JSON that check_json refuses. Answers as JSON `{"detail": ...}` like FastAPI does."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_depth: int) -> None:
        self.app, self.max_bytes, self.max_depth = app, max_bytes, max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _refuse(send, 413, f"request body over {self.max_bytes} bytes")
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await _refuse(send, 413, f"request body over {self.max_bytes} bytes")
                return
            if not message.get("more_body", False):
                break
        if body and scope["path"].startswith("/v1/"):
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                await _refuse(send, 415, "send the body as application/json")
                return
            try:
                check_json(bytes(body), self.max_depth)
            except BadJson as exc:
                await _refuse(send, 400, str(exc))
                return
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive_more: Receive) -> Receive:
    """The body in one message, then the client's own messages (its disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await receive_more()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _refuse(send: Send, status: int, detail: str) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
