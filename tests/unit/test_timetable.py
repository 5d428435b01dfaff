from datetime import UTC, datetime, timedelta

import pytest
from airflow.timetables.base import DataInterval, TimeRestriction

from tandem.timetable import PolicyTimetable

START = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)


def test_first_run_is_the_policy_start_with_catchup():
    tt = PolicyTimetable(START, timedelta(hours=1))
    info = tt.next_dagrun_info(
        last_automated_data_interval=None, restriction=TimeRestriction(START, None, True)
    )
    assert info is not None
    assert info.logical_date == START
    assert info.run_after == START


def test_next_run_stays_on_the_grid_after_an_irregular_one():
    tt = PolicyTimetable(START, timedelta(hours=1))
    last = DataInterval.exact(START + timedelta(minutes=7))
    info = tt.next_dagrun_info(
        last_automated_data_interval=last, restriction=TimeRestriction(START, None, True)
    )
    assert info is not None and info.logical_date == START + timedelta(hours=2)


def test_without_catchup_the_newest_due_instant_runs():
    start = datetime(2020, 1, 1, tzinfo=UTC)
    tt = PolicyTimetable(start, timedelta(hours=1))
    info = tt.next_dagrun_info(
        last_automated_data_interval=None, restriction=TimeRestriction(start, None, False)
    )
    assert info is not None
    now = datetime.now(UTC)
    assert now - timedelta(hours=1) < info.logical_date <= now
    assert (info.logical_date.timestamp() - start.timestamp()) % 3600 == 0


def test_latest_bound_ends_the_schedule():
    tt = PolicyTimetable(START, timedelta(hours=1))
    info = tt.next_dagrun_info(
        last_automated_data_interval=DataInterval.exact(START),
        restriction=TimeRestriction(START, START + timedelta(minutes=30), True),
    )
    assert info is None


def test_round_trips_through_serialisation():
    tt = PolicyTimetable(START, timedelta(minutes=15))
    again = PolicyTimetable.deserialize(tt.serialize())
    assert again == tt
    assert "0:15:00" in again.summary


def test_manual_runs_are_exact_instants():
    tt = PolicyTimetable(START, timedelta(hours=1))
    at = START + timedelta(minutes=3)
    assert tt.infer_manual_data_interval(run_after=at) == DataInterval.exact(at)


def test_rejects_a_non_positive_period():
    with pytest.raises(ValueError, match="positive"):
        PolicyTimetable(START, timedelta(0))
