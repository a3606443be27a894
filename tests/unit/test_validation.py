"""Bad input classes of RELIABILITY.md B1-B3: each gets a reason, never an exception escaping."""

import json
import unicodedata

import pytest

from streams.exceptions import InvalidMessage
from streams.validation import MAX_DEPTH, parse
from tonewatch.contracts import MAX_TEXT_CHARS

pytestmark = pytest.mark.unit


def message(**fields: object) -> dict[str, object]:
    return {
        "id": "n-1", "source": "news", "text": "ACME beats estimates", "tenant": "acme-bank",
        "entity": "$ACME", "ts": "2026-01-05T09:00:00Z", **fields,
    }  # fmt: skip


def raw(**fields: object) -> bytes:
    return json.dumps(message(**fields), ensure_ascii=False).encode()


def reason(payload: bytes | None, source: str = "news") -> str:
    with pytest.raises(InvalidMessage) as caught:
        parse(payload, source)  # type: ignore[arg-type]
    assert caught.value.detail
    return caught.value.reason


def test_a_valid_message_parses() -> None:
    parsed = parse(raw(meta={"publisher": "wire", "tags": ["a", 1]}), "news")
    assert parsed.entity == "$ACME"
    assert parsed.subject == "$ACME"
    assert parsed.meta == {"publisher": "wire", "tags": ["a", 1]}
    assert parsed.ts.tzinfo is not None


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"{not json", "invalid_json"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "bad_encoding"),
        (b"\xff\xfe{}", "bad_encoding"),
        (b"[1, 2, 3]", "invalid_message"),
        (b'"just a string"', "invalid_message"),
        (b"null", "invalid_message"),
    ],
)
def test_undecodable_payloads(payload: bytes | None, expected: str) -> None:
    assert reason(payload) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"id": 7},
        {"id": ""},
        {"text": ""},
        {"text": "   "},
        {"text": ["a list"]},
        {"tenant": "has space"},
        {"ts": "yesterday"},
        {"ts": "2026-01-05T09:00:00"},  # no timezone: ambiguous
        {"source": "tweets"},
        {"entitty": "$ACME"},  # a misspelt field is an error, not silently ignored
        {"meta": "not an object"},
        {"speaker": "customer"},  # chat fields on news
    ],
)
def test_wrong_fields_and_types(fields: dict[str, object]) -> None:
    assert reason(raw(**fields)) == "invalid_message"


def test_missing_fields() -> None:
    payload = message()
    del payload["tenant"]
    assert reason(json.dumps(payload).encode()) == "invalid_message"


def test_chat_messages_need_their_conversation_fields() -> None:
    chat = {"source": "chats", "entity": None, "conversation_id": "c-1", "speaker": "customer"}
    assert reason(raw(**chat), "chats") == "invalid_message"  # no turn
    parsed = parse(raw(**chat, turn=2), "chats")
    assert parsed.subject == "c-1"


def test_a_message_on_the_wrong_topic() -> None:
    assert reason(raw(), "reviews") == "wrong_topic"


def test_oversized_text_is_rejected_not_cut() -> None:
    assert reason(raw(text="x" * (MAX_TEXT_CHARS + 1))) == "text_too_long"
    assert len(parse(raw(text="x" * MAX_TEXT_CHARS), "news").text) == MAX_TEXT_CHARS


def test_deep_nesting_is_refused() -> None:
    nested: object = "leaf"
    for _ in range(MAX_DEPTH + 5):
        nested = {"k": nested}
    assert reason(raw(meta=nested)) == "invalid_message"
    deep = b'{"meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert reason(deep) in {"invalid_json", "invalid_message"}


def test_nul_anywhere_is_refused() -> None:
    assert reason(raw(text="before\x00after")) == "invalid_text"
    assert reason(raw(entity="$AC\x00ME")) == "invalid_text"
    assert reason(raw(meta={"note": "\x00"})) == "invalid_text"


def test_lone_surrogates_are_refused() -> None:
    payload = raw().replace(b"ACME beats", b"\\ud800 beats")
    assert reason(payload) == "bad_encoding"


def test_nfc_and_nfd_are_the_same_message() -> None:
    nfc = unicodedata.normalize("NFC", "Café Zürich résumé")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    a, b = parse(raw(text=nfc), "news"), parse(raw(text=nfd), "news")
    assert a.text == b.text == nfc
    assert a.text_sha256 == b.text_sha256
    assert a.key == b.key


def test_rtl_overrides_and_emoji_sequences_are_kept() -> None:
    text = "refund \u202eevil\u202c 👩🏽‍💻🇫🇷 done"
    assert parse(raw(text=text), "news").text == unicodedata.normalize("NFC", text)
