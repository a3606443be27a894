from typing import get_args

import pytest

from tonewatch import contracts

pytestmark = pytest.mark.unit


def test_label_tuples_match_their_literal_types_in_order() -> None:
    assert get_args(contracts.Sentiment) == contracts.SENTIMENT_LABELS
    assert get_args(contracts.Risk) == contracts.RISK_LABELS
    assert get_args(contracts.Source) == contracts.SOURCES
    assert len(contracts.SENTIMENT_LABELS) == 3
    assert len(contracts.RISK_LABELS) == 7
