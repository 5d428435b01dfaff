"""ClusterRecord: the /tandem/cluster payload, parsed once and strictly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tandem.errors import ZooKeeperError
from tandem.failover.state import ClusterRecord, CorruptRecordError

GOOD = {"name": "primary", "role": "active", "epoch": 3, "updated": "2026-11-20T13:00:00.412Z"}


def payload(**changes: object) -> bytes:
    doc = {**GOOD, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def test_parse_valid_record() -> None:
    record = ClusterRecord.parse(payload())
    updated = datetime(2026, 11, 20, 13, 0, 0, 412000, tzinfo=UTC)
    assert record == ClusterRecord("primary", "active", 3, updated)


def test_round_trip_keeps_every_field() -> None:
    record = ClusterRecord.new("standby", "standby", epoch=7)
    again = ClusterRecord.parse(record.to_bytes())
    assert again == record
    assert json.loads(record.to_bytes())["updated"].endswith("Z")


def test_offset_times_are_normalised_to_utc() -> None:
    record = ClusterRecord.parse(payload(updated="2026-11-20T14:00:00+01:00"))
    assert record.updated == datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
    assert record.updated.utcoffset() == timedelta(0)


def test_unknown_keys_are_ignored_for_forward_compatibility() -> None:
    assert ClusterRecord.parse(payload(note="written by a newer tandem")).epoch == 3


def test_new_converts_to_utc() -> None:
    moment = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    record = ClusterRecord.new("primary", "active", updated=moment)
    assert record.updated == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not UTF-8 JSON"),
        (b"\xff\xfe\x00", "not UTF-8 JSON"),
        (b"{not json", "not UTF-8 JSON"),
        (b'["primary", "active"]', "not a JSON object"),
        (b"null", "not a JSON object"),
        (payload(role=...), "missing role"),
        (payload(name=..., epoch=...), "missing name, epoch"),
        (payload(name=""), "'name' must be a non-empty string"),
        (payload(name=5), "'name' must be a non-empty string"),
        (payload(role="leader"), "'role' must be 'active' or 'standby'"),
        (payload(role="Active"), "'role' must be 'active' or 'standby'"),
        (payload(epoch="3"), "'epoch' must be a non-negative integer"),
        (payload(epoch=1.5), "'epoch' must be a non-negative integer"),
        (payload(epoch=True), "'epoch' must be a non-negative integer"),
        (payload(epoch=-1), "'epoch' must be a non-negative integer"),
        (payload(updated=1700000000), "'updated' must be an ISO-8601 string"),
        (payload(updated="yesterday"), "'updated' is not ISO-8601"),
        (payload(updated="2026-11-20T13:00:00"), "'updated' has no time zone"),
    ],
)
def test_corrupt_payloads_are_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(CorruptRecordError) as caught:
        ClusterRecord.parse(data)
    assert caught.value.reason.startswith(reason)
    assert caught.value.data == data
    # callers that only know the ZooKeeper family still catch it, and the message says what to do
    assert isinstance(caught.value, ZooKeeperError)
    assert "rewrite it as JSON" in str(caught.value)


def test_record_is_immutable() -> None:
    record = ClusterRecord.parse(payload())
    with pytest.raises(AttributeError):
        record.role = "standby"  # type: ignore[misc]
