"""The Airflow plugin: Tandem's timetable, and its operators' page in the UI.

The page is a FastAPI app mounted by the api-server under ``/tandem`` (it reads nothing until a
request comes), shown as "Disaster recovery" in the navigation and as a "Disaster recovery" tab
on every DAG page (which says so for DAGs that are not Tandem's).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from tandem.timetable import PolicyTimetable
from tandem.ui.app import create_app


class TandemPlugin(AirflowPlugin):
    name = "tandem"
    timetables = [PolicyTimetable]
    fastapi_apps = [{"name": "tandem", "app": create_app(), "url_prefix": "/tandem"}]
    external_views = [
        {
            "name": "Disaster recovery",
            "href": "tandem/ui/",
            "destination": "nav",
            "url_route": "tandem",
            "nav_top_level": True,
        },
        {
            "name": "Disaster recovery",
            "href": "tandem/ui/dag/{DAG_ID}",
            "destination": "dag",
            "url_route": "tandem-dag",
        },
    ]
