"""Ask a Kafka broker for its version over the Kafka protocol (ApiVersions v3).

The protocol carries no release string, but since KIP-584 the ApiVersions response lists the
cluster's finalized features; `metadata.version` maps one-to-one onto a release ("4.4-IV2"),
which is what `kafka-features.sh describe` and Kafka UIs show as the broker's version.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

API_VERSIONS_KEY = 18
API_VERSIONS_VERSION = 3

# featureLevel -> release, from org.apache.kafka.server.common.MetadataVersion.
METADATA_VERSIONS: dict[int, str] = {
    7: "3.3-IV3", 8: "3.4-IV0", 9: "3.5-IV0", 10: "3.5-IV1", 11: "3.5-IV2", 12: "3.6-IV0",
    13: "3.6-IV1", 14: "3.6-IV2", 15: "3.7-IV0", 16: "3.7-IV1", 17: "3.7-IV2", 18: "3.7-IV3",
    19: "3.7-IV4", 20: "3.8-IV0", 21: "3.9-IV0", 22: "4.0-IV0", 23: "4.0-IV1", 24: "4.0-IV2",
    25: "4.0-IV3", 26: "4.1-IV0", 27: "4.1-IV1", 28: "4.2-IV0", 29: "4.2-IV1", 30: "4.3-IV0",
    31: "4.4-IV0", 32: "4.4-IV1", 33: "4.4-IV2", 34: "4.5-IV0",
}  # fmt: skip


@dataclass
class BrokerApiVersions:
    api_keys: dict[int, tuple[int, int]] = field(default_factory=dict)
    finalized_features: dict[str, int] = field(default_factory=dict)

    @property
    def version(self) -> str:
        level = self.finalized_features.get("metadata.version")
        if level is None:
            return "unknown (no finalized metadata.version)"
        return METADATA_VERSIONS.get(level, f"metadata.version level {level}")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def compact_string(self) -> str:
        length = self.uvarint() - 1
        text = self.data[self.pos : self.pos + length].decode()
        self.pos += length
        return text

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()


def _compact_string(text: str) -> bytes:
    raw = text.encode()
    return bytes([len(raw) + 1]) + raw  # both strings here are far below 127 bytes


def _request(correlation_id: int) -> bytes:
    client_id = b"tonewatch"
    header = struct.pack(">hhih", API_VERSIONS_KEY, API_VERSIONS_VERSION, correlation_id,
                         len(client_id)) + client_id + b"\x00"  # fmt: skip
    body = _compact_string("tonewatch") + _compact_string("1") + b"\x00"
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def parse_response(payload: bytes, correlation_id: int) -> BrokerApiVersions:
    """Parse an ApiVersions v3 response (its header is v0: no tagged fields)."""
    reader = _Reader(payload)
    if reader.take(">i") != correlation_id:
        raise ValueError("correlation id mismatch")
    error_code = reader.take(">h")
    if error_code:
        raise ValueError(f"ApiVersions error code {error_code}")
    result = BrokerApiVersions()
    for _ in range(reader.uvarint() - 1):
        key, low, high = reader.take(">h"), reader.take(">h"), reader.take(">h")
        reader.skip_tagged_fields()
        result.api_keys[key] = (low, high)
    reader.take(">i")  # throttle_time_ms
    for _ in range(reader.uvarint()):
        tag, size = reader.uvarint(), reader.uvarint()
        end = reader.pos + size
        if tag == 2:  # FinalizedFeatures: [name, max_version_level, min_version_level]
            for _ in range(reader.uvarint() - 1):
                name = reader.compact_string()
                result.finalized_features[name] = reader.take(">h")
                reader.take(">h")
                reader.skip_tagged_fields()
        reader.pos = end
    return result


def fetch_api_versions(host: str, port: int, timeout_s: float = 2.0) -> BrokerApiVersions:
    """One ApiVersions round trip; raises OSError or ValueError when the broker can't answer."""
    correlation_id = 7
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(_request(correlation_id))
        size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
        return parse_response(_recv_exactly(sock, size), correlation_id)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
