"""The Airflow plugin: registers Tandem's timetable (and later its API and views)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from tandem.timetable import PolicyTimetable


class TandemPlugin(AirflowPlugin):
    name = "tandem"
    timetables = [PolicyTimetable]
