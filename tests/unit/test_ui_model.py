"""The operators' page's rules: pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tandem.ui.model import EXCEEDED, MET, NO_POINT, SEVERE, UNKNOWN, BusinessRow, Snapshot, compliance

HOUR = 3600.0


@pytest.mark.parametrize(
    ("rpo", "reachable", "state"),
    [
        (0.0, True, MET),
        (HOUR, True, MET),
        (HOUR + 1, True, EXCEEDED),
        (2 * HOUR, True, EXCEEDED),
        (2 * HOUR + 1, True, SEVERE),
        (None, True, NO_POINT),
        (None, False, UNKNOWN),  # no cluster answered: nothing is known, not "no point"
    ],
)
def test_compliance_compares_the_actual_rpo_with_the_period(
    rpo: float | None, reachable: bool, state: str
) -> None:
    assert compliance(rpo, HOUR, reachable) == state


def test_counts_cover_every_state() -> None:
    def row(name: str, state: str) -> BusinessRow:
        return BusinessRow(name, "main", f"tandem_backup__{name}", HOUR, None, None, state, None, None)

    snap = Snapshot(datetime.now(UTC), (row("a", MET), row("b", MET), row("c", SEVERE)), (), ())
    assert snap.counts() == {MET: 2, EXCEEDED: 0, SEVERE: 1, NO_POINT: 0, UNKNOWN: 0}
    assert row("a", MET).to_json()["newest_point"] is None
