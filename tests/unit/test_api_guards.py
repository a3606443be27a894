import pytest

from tonewatch.api.guards import BadJson, check_json

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"a": 1, "a": 2}', "duplicate key"),
        (b"[" * 33 + b"]" * 33, "deeper than 32"),
        (b'{"a": ' + b"9" * 41 + b"}", "a number of 41 characters"),
        (b'{"a": Infinity}', "Infinity is not JSON"),
        (b'["\\udc00"]', "lone surrogate"),
        (b'{"a": "x"', "invalid JSON"),
    ],
)
def test_refused_bodies_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(BadJson, match=reason):
        check_json(body, max_depth=32)


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    text = '"' + "[{" * 100 + '\\"' + '"'
    assert check_json(f'{{"a": [{text}]}}'.encode(), max_depth=3) == {
        "a": [text[1:-1].replace('\\"', '"')]
    }


def test_sane_json_passes_unchanged() -> None:
    body = b'{"name": "\\u00e9t\\u00e9 \xf0\x9f\x98\x80", "n": [1, 2.5, -3e10, null, true]}'
    assert check_json(body, max_depth=32) == {
        "name": "été 😀", "n": [1, 2.5, -3e10, None, True]
    }  # fmt: skip
