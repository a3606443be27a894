import struct

import pytest

from tonewatch.services.kafka_api_versions import parse_response

pytestmark = pytest.mark.unit


def _compact(text: str) -> bytes:
    return bytes([len(text) + 1]) + text.encode()


def _response(correlation_id: int, features: dict[str, int], error: int = 0) -> bytes:
    api_keys = bytes([3]) + struct.pack(">hhh", 0, 0, 11) + b"\x00"
    api_keys += struct.pack(">hhh", 18, 0, 4) + b"\x00"
    finalized = bytes([len(features) + 1]) + b"".join(
        _compact(name) + struct.pack(">hh", level, 1) + b"\x00" for name, level in features.items()
    )
    supported = bytes([1])  # tag 0, an empty array: must be skipped
    tagged = bytes([2]) + bytes([0, len(supported)]) + supported
    tagged += bytes([2, len(finalized)]) + finalized
    return struct.pack(">ih", correlation_id, error) + api_keys + struct.pack(">i", 0) + tagged


def test_reads_api_ranges_and_the_metadata_version_release() -> None:
    parsed = parse_response(_response(7, {"metadata.version": 33, "group.version": 1}), 7)
    assert parsed.api_keys == {0: (0, 11), 18: (0, 4)}
    assert parsed.finalized_features == {"metadata.version": 33, "group.version": 1}
    assert parsed.version == "4.4-IV2"


def test_unknown_level_is_reported_not_guessed() -> None:
    assert parse_response(_response(1, {"metadata.version": 99}), 1).version == (
        "metadata.version level 99"
    )


def test_missing_metadata_version_says_so() -> None:
    assert parse_response(_response(1, {}), 1).version.startswith("unknown")


def test_rejects_mismatched_correlation_and_errors() -> None:
    with pytest.raises(ValueError, match="correlation"):
        parse_response(_response(1, {}), 2)
    with pytest.raises(ValueError, match="error code 35"):
        parse_response(_response(1, {}, error=35), 1)
