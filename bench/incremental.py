"""An incremental backup costs what changed, not what exists: the same change on two business sizes.

    .venv/bin/python bench/incremental.py [--json] [--quick] [--dir DIR] [--keep]

Two businesses on the embedded primary, of 10,000 and 100,000 files of 16 KiB (``--quick``: 1,000
and 10,000), each with a published point on the standby. The same 100 files of each are then
rewritten with new bytes, and in one run the incremental backup of each (every step of the
backup DAG, in this process: ``tandem.backup.run_once``) is timed beside ``rsync -a`` of the same
change between two local copies of the same trees, so load on the shared machine hits both.

Only the backups are timed. The trees are built the fastest way: straight into the primary's
namespace before the servers start, and the standby's namespace is a copy of it, so the first
(full, timed but not the point) backup of each business finds its data in place and only
publishes the base point, as a rerun of an interrupted full copy would.

Requests are counted on the servers' side, from the embedded WebHDFS request logs
(:mod:`tandem_dev.embedded.request_log`): the product is not instrumented. The breakdown is per
changed file, both clusters, everything the incremental run sent (preflight, snapshots, copy,
verification, publish, retention), and new connections. Each step's seconds come from
``run_once``'s ``on_step`` and are printed for both sizes, so what grows shows by step.

Targets: ``incr_growth`` (100k over 10k) at most 1.3, Tandem faster than rsync at 100k files
(``incremental_over_rsync_100k`` below 1), bytes copied equal to bytes changed within 1%.
``--json`` prints exactly ``incr_10k_s``, ``incr_100k_s``, ``incr_growth``, ``rsync_10k_s``,
``rsync_100k_s``, ``incremental_over_rsync_100k``, ``changed_bytes``, ``incremental_bytes_copied``,
``requests_per_changed_file`` and ``request_breakdown`` (per changed file, of the 100k run);
progress goes to stderr.
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
from typing import Any

# Airflow reads its log level at import: the hooks would log every request otherwise.
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

import yaml

from tandem import backup
from tandem.hdfs.client import Hdfs
from tandem.policy import Policy, Topology, load_policy, load_topology
from tandem.runtime import Clusters
from tandem_dev.embedded import manager, request_log
from tandem_dev.embedded.cluster import SUPERUSER, ClusterPaths

PROJECT = Path(__file__).resolve().parents[1]
FILE_SIZE = 16 << 10
PER_DIR = 100
CHANGED = 100
T1 = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Business:
    """One benchmark business: ``files`` files of FILE_SIZE under ``/bench/<name>``."""

    name: str
    files: int

    @property
    def top(self) -> str:
        return f"/bench/{self.name}"

    def rel(self, i: int) -> str:
        return f"dir-{i // PER_DIR:04d}/file-{i:06d}.bin"

    def changed(self) -> list[int]:
        """The same number of files (CHANGED) in either business, spread over the whole tree."""
        step = self.files // CHANGED
        return list(range(step // 2, self.files, step))[:CHANGED]


FULL = (Business("b10k", 10_000), Business("b100k", 100_000))
QUICK = (Business("b10k", 1_000), Business("b100k", 10_000))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def content(i: int) -> bytes:
    """A file's first bytes: distinct per file, cheap to make (compression plays no part)."""
    return (f"{i:015d}\n".encode() * (FILE_SIZE // 16))[:FILE_SIZE]


def build_trees(home: Path, local: Path, businesses: tuple[Business, ...]) -> None:
    """Each business straight into the primary's namespace and into a local tree; the
    standby's namespace then becomes a copy of the primary's, the local mirror hard links."""
    from tandem_dev.embedded.namespace import Namespace

    primary = ClusterPaths(home, "primary").hdfs_root
    namespace = Namespace(primary, superuser=SUPERUSER)
    try:
        for business in businesses:
            log(f"building {business.files:,} files of {business.name} ...")
            for i in range(business.files):
                data = content(i)
                parts = tuple(f"{business.top}/{business.rel(i)}".strip("/").split("/"))
                pending = namespace.begin_create(parts, SUPERUSER)
                pending.write(data)
                namespace.commit_write(pending)
                path = local / "source" / business.name / business.rel(i)
                if i % PER_DIR == 0:
                    path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    finally:
        namespace.close()
    standby = ClusterPaths(home, "standby").hdfs_root
    standby.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(primary), str(standby)], check=True)
    (standby / "namespace.lock").unlink(missing_ok=True)
    subprocess.run(["cp", "-al", str(local / "source"), str(local / "mirror")], check=True)


def change(hdfs: Hdfs, local: Path, business: Business) -> int:
    """Rewrite the business's changed files with new bytes of the same size, on the primary
    (WebHDFS) and in the local source (a new inode: the mirror's hard link keeps the old one)."""

    def one(i: int) -> int:
        data = os.urandom(FILE_SIZE)
        path = local / "source" / business.name / business.rel(i)
        fresh = path.with_name(path.name + ".new")
        fresh.write_bytes(data)
        fresh.replace(path)
        hdfs.write(f"{business.top}/{business.rel(i)}", data)
        return len(data)

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(one, business.changed()))


def rsync(local: Path, business: Business) -> float:
    source, mirror = local / "source" / business.name, local / "mirror" / business.name
    started = time.perf_counter()
    subprocess.run(["rsync", "-a", f"{source}/", f"{mirror}/"], check=True)
    return time.perf_counter() - started


def policy_for(work: Path, topology_file: Path, business: Business) -> Policy:
    path = work / f"{business.name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "business": business.name,
                "description": "benchmark business",
                "pair": "main",
                "schedule": {"start": "2026-11-20T13:00:00Z", "every": "1h"},
                "protection_group": [{"hdfs": business.top}],
                "copy": {"parallelism": 8},
                "consistency": {"max_skew": "1s", "max_clock_skew": "5s"},
                "retention": {"keep_last": 5, "max_age": "30d"},
                "user_data": False,
            }
        )
    )
    return load_policy(path, load_topology(topology_file))


class Requests:
    """Counts what the embedded WebHDFS servers answered between :meth:`mark` and :meth:`since`."""

    def __init__(self, where: Path) -> None:
        self.files = [where / "primary.log", where / "standby.log"]
        self.offsets = [0, 0]

    def mark(self) -> None:
        self.offsets = [request_log.size(f) for f in self.files]

    def since(self) -> request_log.Tally:
        tally = request_log.Tally()
        for path, offset in zip(self.files, self.offsets, strict=True):
            tally = tally + request_log.read(path, offset)
        return tally

    def save(self, where: Path) -> None:
        """The lines since :meth:`mark`, per cluster, as ``<where>-<cluster>.tsv`` (``--keep``)."""
        for path, offset in zip(self.files, self.offsets, strict=True):
            with path.open("rb") as handle:
                handle.seek(offset)
                Path(f"{where}-{path.stem}.tsv").write_bytes(handle.read())


def timed_backup(
    policy: Policy,
    topology: Topology,
    clusters: Clusters,
    instant: datetime,
    *,
    full: bool = False,
    steps: dict[str, float] | None = None,
) -> tuple[dict[str, Any], float]:
    """One backup, timed; ``steps`` gets each step kind's seconds."""

    def took(step: backup.Step, seconds: float) -> None:
        if steps is not None:
            steps[step.kind] = round(steps.get(step.kind, 0.0) + seconds, 3)

    started = time.perf_counter()
    manifest = backup.run_once(backup.Run(policy, topology, instant, force_full=full), clusters, took)
    return manifest, time.perf_counter() - started


def breakdown(tally: request_log.Tally, per: int) -> dict[str, float]:
    """Requests per changed file by server role and operation, and new connections."""
    out = {key: round(n / per, 2) for key, n in sorted(tally.requests.items(), key=lambda kv: -kv[1])}
    out["new connections"] = round(tally.total_connections / per, 2)
    return out


def server_ms(tally: request_log.Tally) -> dict[str, float]:
    """The servers' milliseconds per operation over the whole run."""
    return {key: round(ms, 1) for key, ms in sorted(tally.server_ms.items(), key=lambda kv: -kv[1])}


def run(work: Path, businesses: tuple[Business, ...]) -> dict[str, Any]:
    if shutil.which("rsync") is None:
        raise SystemExit("rsync is missing: `make bench` installs it (apt-get install rsync)")
    home, local, logs = work / "home", work / "local", work / "requests"
    build_started = time.perf_counter()
    build_trees(home, local, businesses)
    log(f"trees built in {time.perf_counter() - build_started:.0f} s")
    os.environ[request_log.ENV] = str(logs)  # the cluster processes inherit it
    topology_file = PROJECT / "include" / "clusters.yaml"
    embedded = manager.up(home)
    try:
        os.environ.update(manager.connection_env(embedded))
        topology = load_topology(topology_file)
        clusters = Clusters(topology)
        primary = clusters.hdfs("primary")
        policies = {b.name: policy_for(work, topology_file, b) for b in businesses}
        for business in businesses:
            manifest, seconds = timed_backup(policies[business.name], topology, clusters, T1, full=True)
            log(
                f"{business.name}: base point (full backup over data in place): "
                f"{manifest['files_copied']} files copied in {seconds:.1f} s"
            )
        changed_bytes = {b.name: change(primary, local, b) for b in businesses}
        counter = Requests(logs)
        result: dict[str, Any] = {}
        for business, key in zip(businesses, ("10k", "100k"), strict=True):
            counter.mark()
            steps: dict[str, float] = {}
            manifest, seconds = timed_backup(
                policies[business.name], topology, clusters, T1 + timedelta(hours=1), steps=steps
            )
            result[f"steps_{key}_s"] = steps
            tally = counter.since()
            counter.save(work / f"requests-{key}")
            rsync_s = rsync(local, business)
            log(
                f"{business.name}: {manifest['mode']} backup of {manifest['files_copied']} files in "
                f"{seconds:.2f} s ({tally.total_requests} requests, {tally.total_connections} connections); "
                f"rsync -a {rsync_s:.2f} s"
            )
            if manifest["mode"] != "incremental":
                raise SystemExit(
                    f"{business.name}: the second backup was {manifest['mode']}, not incremental"
                )
            result[f"incr_{key}_s"] = round(seconds, 3)
            result[f"rsync_{key}_s"] = round(rsync_s, 3)
            result[f"bytes_copied_{key}"] = manifest["bytes_copied"]
            result[f"changed_bytes_{key}"] = changed_bytes[business.name]
            result[f"requests_{key}"] = tally
        big: request_log.Tally = result["requests_100k"]
        return {
            **result,
            "incr_growth": round(result["incr_100k_s"] / result["incr_10k_s"], 3),
            "incremental_over_rsync_100k": round(result["incr_100k_s"] / result["rsync_100k_s"], 3),
            "changed_bytes": result["changed_bytes_100k"],
            "incremental_bytes_copied": result["bytes_copied_100k"],
            "requests_per_changed_file": round(big.total_requests / CHANGED, 2),
            "request_breakdown": breakdown(big, CHANGED),
            "request_breakdown_10k": breakdown(result["requests_10k"], CHANGED),
            "server_ms_100k": server_ms(big),
            "server_ms_10k": server_ms(result["requests_10k"]),
        }
    finally:
        manager.down(home)
        os.environ.pop(request_log.ENV, None)


KEYS = (
    "incr_10k_s",
    "incr_100k_s",
    "incr_growth",
    "rsync_10k_s",
    "rsync_100k_s",
    "incremental_over_rsync_100k",
    "changed_bytes",
    "incremental_bytes_copied",
    "requests_per_changed_file",
    "request_breakdown",
)


def report(result: dict[str, Any], businesses: tuple[Business, ...]) -> None:
    small, big = businesses
    agree = (
        abs(result["incremental_bytes_copied"] - result["changed_bytes"]) <= 0.01 * result["changed_bytes"]
    )
    print(f"the same {CHANGED}-file change on businesses of {small.files:,} and {big.files:,} files")
    for business, key in ((small, "10k"), (big, "100k")):
        incr, copy = result[f"incr_{key}_s"], result[f"rsync_{key}_s"]
        print(f"incremental {business.files:>7,} files  {incr:8.2f} s   rsync -a {copy:6.2f} s")
    print(f"incremental growth {result['incr_growth']:.2f} (target <= 1.3)")
    print(
        f"incremental/rsync at {big.files:,} files {result['incremental_over_rsync_100k']:.2f} (target < 1)"
    )
    verdict = "within" if agree else "NOT within"
    changed, copied = result["changed_bytes"], result["incremental_bytes_copied"]
    print(f"bytes changed {changed:,}, copied {copied:,} ({verdict} 1%)")
    print(f"seconds per step ({small.files:,} files / {big.files:,} files):")
    for kind, seconds in result["steps_100k_s"].items():
        print(f"  {kind:<24} {result['steps_10k_s'].get(kind, 0):6.2f}  {seconds:6.2f}")
    print(f"requests per changed file {result['requests_per_changed_file']} ({big.files:,}-file business):")
    small_view = result["request_breakdown_10k"]
    ms, small_ms = result["server_ms_100k"], result["server_ms_10k"]
    for key, value in result["request_breakdown"].items():
        print(
            f"  {key:<40} {value:7.2f}   ({small.files:,} files: {small_view.get(key, 0):5.2f})"
            f"   server {ms.get(key, 0):8.1f} ms ({small.files:,} files: {small_ms.get(key, 0):7.1f})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="businesses of a tenth of the size")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory (each incremental's requests in requests-<size>-<cluster>.tsv)",
    )
    args = parser.parse_args(argv)
    businesses = QUICK if args.quick else FULL
    if args.dir is not None:
        Path(args.dir).mkdir(parents=True, exist_ok=True)  # a --dir that does not exist yet is made
    work = Path(tempfile.mkdtemp(prefix="tandem-bench-", dir=args.dir))
    try:
        result = run(work, businesses)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({k: result[k] for k in KEYS}))
    else:
        report(result, businesses)
    return 0


if __name__ == "__main__":
    sys.exit(main())
