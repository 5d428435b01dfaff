"""Full vs incremental backup of one business, and rsync of the same change, in one run.

    .venv/bin/python bench/incremental.py [--json] [--quick] [--dir DIR]

A business of 10,000 files, 1 GiB (``--quick``: 1,000 files, 100 MiB) on the embedded primary.
Times a full backup, changes 1% of the files (rewritten with new bytes of the same size),
times the incremental backup, and times ``rsync -a`` of the same change between two local
copies of the same tree. Each backup is every step of the backup DAG, run in this process
(``tandem.backup.run_once``): preflight, snapshot, copy, standby snapshot, publish, retention.

Prints the bytes the incremental copied against the bytes changed (they must agree within 1%),
the incremental/full time ratio (target at most 0.1) and the incremental/rsync ratio (target
below 1: a snapshot diff does not scan unchanged files, rsync stats every one). ``--json``
prints exactly ``changed_bytes``, ``incremental_bytes_copied``, ``incremental_over_full`` and
``incremental_over_rsync``; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Airflow reads its log level at import: the hooks would log every request otherwise.
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

import yaml

from tandem import backup
from tandem.hdfs.client import Hdfs
from tandem.policy import load_policy, load_topology
from tandem.runtime import Clusters
from tandem_dev.embedded import manager

PROJECT = Path(__file__).resolve().parents[1]
TOP = "/bench/business"


@dataclass(frozen=True)
class Sizes:
    files: int
    file_size: int
    per_dir: int = 100


FULL = Sizes(10_000, (1 << 30) // 10_000)
QUICK = Sizes(1_000, (100 << 20) // 1_000)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rel(i: int, sizes: Sizes) -> str:
    return f"dir-{i // sizes.per_dir:03d}/file-{i:05d}.bin"


def write_both(hdfs: Hdfs, local: Path, indexes: list[int], sizes: Sizes) -> int:
    """The same fresh random bytes to HDFS and to the local rsync source; returns bytes written."""

    def one(i: int) -> int:
        data = os.urandom(sizes.file_size)
        path = local / rel(i, sizes)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        hdfs.write(f"{TOP}/{rel(i, sizes)}", data)
        return len(data)

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(one, indexes))


def rsync(source: Path, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["rsync", "-a", f"{source}/", f"{target}/"], check=True)
    return time.perf_counter() - started


def policy_for(work: Path, topology_file: Path) -> object:
    path = work / "bench.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "business": "bench",
                "description": "benchmark business",
                "pair": "main",
                "schedule": {"start": "2026-11-20T13:00:00Z", "every": "1h"},
                "protection_group": [{"hdfs": TOP}],
                "copy": {"parallelism": 8},
                "consistency": {"max_skew": "1s", "max_clock_skew": "5s"},
                "retention": {"keep_last": 5, "max_age": "30d"},
                "user_data": False,
            }
        )
    )
    return load_policy(path, load_topology(topology_file))


def run(work: Path, sizes: Sizes) -> dict[str, float]:
    if shutil.which("rsync") is None:
        raise SystemExit("rsync is missing: `make bench` installs it (apt-get install rsync)")
    home = work / "home"
    topology_file = PROJECT / "include" / "clusters.yaml"
    embedded = manager.up(home)
    try:
        os.environ.update(manager.connection_env(embedded))
        topology = load_topology(topology_file)
        clusters = Clusters(topology)
        policy = policy_for(work, topology_file)
        source, mirror = work / "rsync-source", work / "rsync-mirror"
        log(f"writing {sizes.files} files, {sizes.files * sizes.file_size / 2**20:.0f} MiB ...")
        write_both(clusters.hdfs("primary"), source, list(range(sizes.files)), sizes)
        rsync(source, mirror)  # the baseline starts from an identical copy, as the standby does

        t1 = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
        log("full backup ...")
        started = time.perf_counter()
        full = backup.run_once(backup.Run(policy, topology, t1, force_full=True), clusters)  # type: ignore[arg-type]
        full_s = time.perf_counter() - started
        log(f"  {full['files_copied']} files, {full['bytes_copied'] / 2**20:.0f} MiB in {full_s:.1f} s")

        changed = list(range(0, sizes.files, 100))
        changed_bytes = write_both(clusters.hdfs("primary"), source, changed, sizes)
        log(f"changed {len(changed)} files ({changed_bytes / 2**20:.1f} MiB); incremental backup ...")
        started = time.perf_counter()
        incremental = backup.run_once(backup.Run(policy, topology, t1 + timedelta(hours=1)), clusters)  # type: ignore[arg-type]
        incremental_s = time.perf_counter() - started
        log(f"  {incremental['mode']}: {incremental['files_copied']} files in {incremental_s:.2f} s")
        rsync_s = rsync(source, mirror)
        log(f"rsync -a of the same change: {rsync_s:.2f} s")
        return {
            "changed_bytes": changed_bytes,
            "incremental_bytes_copied": incremental["bytes_copied"],
            "incremental_over_full": round(incremental_s / full_s, 4),
            "incremental_over_rsync": round(incremental_s / rsync_s, 3),
            "full_s": round(full_s, 2),
            "incremental_s": round(incremental_s, 3),
            "rsync_s": round(rsync_s, 3),
        }
    finally:
        manager.down(home)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print the four figures as JSON")
    parser.add_argument("--quick", action="store_true", help="a tenth of the full size")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    work = Path(tempfile.mkdtemp(prefix="tandem-bench-", dir=args.dir))
    try:
        result = run(work, sizes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        keys = (
            "changed_bytes",
            "incremental_bytes_copied",
            "incremental_over_full",
            "incremental_over_rsync",
        )
        print(json.dumps({k: result[k] for k in keys}))
        return 0
    agree = (
        abs(result["incremental_bytes_copied"] - result["changed_bytes"]) <= 0.01 * result["changed_bytes"]
    )
    print(f"changed bytes            {result['changed_bytes']:>14,}")
    verdict = "within" if agree else "NOT within"
    print(f"incremental bytes copied {result['incremental_bytes_copied']:>14,}  ({verdict} 1%)")
    print(f"full backup              {result['full_s']:>10.2f} s")
    print(
        f"incremental backup       {result['incremental_s']:>10.2f} s  "
        f"incremental/full {result['incremental_over_full']:.3f} (target <= 0.1)"
    )
    print(
        f"rsync -a of the change   {result['rsync_s']:>10.2f} s  "
        f"incremental/rsync {result['incremental_over_rsync']:.2f} (target < 1)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
