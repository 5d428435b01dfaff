"""How the DAG folder's parse grows with the number of businesses, measured in one run.

    .venv/bin/python bench/parse.py [--json] [--sizes 500,1000]

For each size N, generates N policies (distinct HDFS paths and tables, like billing.yaml under
other names) in a temporary include directory and times what Airflow's DAG processor does with
the DAG folder: a ``DagBag`` of ``dags/`` (both DAG files), in a fresh interpreter per size so
no import or cache is shared. Only the ``DagBag`` call is timed (not starting Python or
importing Airflow). Prints ``parse_<N>_s`` per size and ``ratio_1000_over_500``; targets: the
ratio at most 2.2 (linear) and 1,000 policies well inside Airflow's 30 s
``dagbag_import_timeout``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "dags": len(bag.dags), "errors": len(bag.import_errors)}))
"""


def write_policies(include: Path, count: int) -> None:
    shutil.copy(PROJECT / "include" / "clusters.yaml", include / "clusters.yaml")
    policies = include / "policies"
    policies.mkdir()
    for n in range(count):
        business = f"biz{n:05d}"
        body = {
            "business": business,
            "description": f"generated business {n}",
            "pair": "main",
            "schedule": {"start": "2026-11-20T13:00:00Z", "every": "1h"},
            "protection_group": [
                {"hdfs": f"/data/{business}/details"},
                {"hive": f"{business}.customers"},
                {"sparksql": f"{business}_mart.settlements"},
            ],
            "copy": {"mode": "pull", "engine": "webhdfs", "parallelism": 8},
            "consistency": {"max_skew": "1s", "max_clock_skew": "2s"},
            "retention": {"keep_last": 24, "max_age": "7d"},
            "user_data": True,
            "tenant_dirs": [f"/data/{business}"],
        }
        (policies / f"{business}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))


def parse(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="tandem-parse-") as tmp:
        include = Path(tmp) / "include"
        include.mkdir()
        write_policies(include, count)
        env = {
            **os.environ,
            "TANDEM_INCLUDE": str(include),
            "AIRFLOW_HOME": str(Path(tmp) / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(PROJECT / "dags")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if out.returncode != 0:
            raise SystemExit(f"parsing {count} policies failed:\n{out.stderr[-3000:]}")
        result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sizes", default="500,1000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    result: dict[str, float] = {}
    for size in sizes:
        got = parse(size)
        expected = size + 3  # the backups, tandem_restore, and the pair's watch and promotion DAGs
        if got["dags"] != expected or got["errors"]:
            print(
                f"{size} policies: {got['dags']} DAGs (expected {expected}), {got['errors']} errors",
                file=sys.stderr,
            )
            return 1
        result[f"parse_{size}_s"] = round(got["seconds"], 2)
        print(f"{size} policies: {got['seconds']:.2f} s for {got['dags']} DAGs", file=sys.stderr)
    if {500, 1000} <= set(sizes):
        result["ratio_1000_over_500"] = round(result["parse_1000_s"] / result["parse_500_s"], 2)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
        ratio = result.get("ratio_1000_over_500")
        if ratio is not None:
            print(f"linear (ratio <= 2.2): {'met' if ratio <= 2.2 else 'MISSED'}")
        if "parse_1000_s" in result:
            print(f"1,000 policies under 15 s: {'met' if result['parse_1000_s'] < 15 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
