import pytest

from tonewatch.commands.classify import parse_line
from tonewatch.contracts import MAX_TEXT_CHARS, ClassifyRequest

pytestmark = pytest.mark.unit


def test_a_good_line_parses_and_integer_ids_become_text() -> None:
    parsed = parse_line(1, '{"id": 7, "text": "  hello ", "source": "news", "extra": 1}')
    assert parsed == ClassifyRequest(id="7", text="hello", source="news")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "Invalid JSON"),
        ('{"text": "x"}', "id: Field required"),
        ('{"id": "a", "text": ""}', "text: String should have at least 1 character"),
        ('{"id": "a", "text": "x", "source": "tv"}', "source: Input should be"),
        ('{"id": true, "text": "x"}', "id: Input should be a valid string"),
        (f'{{"id": "a", "text": "{"x" * (MAX_TEXT_CHARS + 1)}"}}', "at most 20000 characters"),
    ],
)
def test_a_bad_line_gets_a_clear_error_with_its_number(line: str, message: str) -> None:
    error = parse_line(42, line)
    assert isinstance(error, str)
    assert error.startswith("line 42: ")
    assert message in error
