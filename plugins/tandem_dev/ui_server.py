"""``tandem ui``: the Airflow UI on the embedded clusters, with Tandem's Disaster recovery page.

Starts the embedded clusters if they are not running, then ``airflow standalone`` (api-server,
scheduler, triggerer, DAG processor) on the demo's Airflow home, so the page shows the demo's
businesses, their restore points and their runs. Prints where to look and how to log in
(``--json``: ``{"url", "username", "password"}``, once the api-server answers with a token),
and runs until interrupted (Ctrl-C or SIGTERM), then stops Airflow; the clusters stay up.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path
from types import FrameType


def run_ui(args: argparse.Namespace) -> int:
    from tandem.environment import project_root
    from tandem_dev.embedded import manager, zookeeper
    from tandem_dev.local_airflow import AirflowServer, LocalAirflow

    project = project_root(Path.cwd())
    topology = manager.up(args.home)
    conns = tuple(sorted(manager.connection_env(topology).items()))
    airflow = LocalAirflow(topology.home / "airflow", project, conns, (("TANDEM_HOME", str(topology.home)),))
    airflow.ensure_db()
    port = zookeeper.free_port()
    env = airflow.env()
    env.update(
        {
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    server = AirflowServer(topology.home / "airflow", env, port)
    stop = threading.Event()

    def finish(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, finish)}
    try:
        if not args.json:
            print("Starting Airflow (api-server, scheduler, triggerer; about a minute)...", flush=True)
        server.start()
        server.wait_ready()  # Ctrl-C here interrupts the start (KeyboardInterrupt), and Airflow stops
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, finish)
        password = server.password()
        page = f"{server.url}/plugin/tandem"
        if args.json:
            print(json.dumps({"url": page, "username": "admin", "password": password}), flush=True)
        else:
            print(
                f"Disaster recovery page: {page}\n"
                f"Log in as admin with password {password} (Airflow at {server.url}, "
                f"log {server.log_path}).\n"
                "Ctrl-C stops Airflow; the embedded clusters stay up (`tandem down` stops them).",
                flush=True,
            )
        stop.wait()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
