"""Benchmark the embedded WebHDFS server against ``cp`` on the same disk, in one run.

    .venv/bin/python bench/webhdfs.py [--json] [--quick] [--dir DIR]

What it measures (full size; ``--quick`` uses 4 large files and a tenth of the rest):

* large files: 1 GiB as 16 files of 64 MiB, written then read back through HdfsCLI (the ``hdfs``
  package, the client Airflow's WebHDFSHook builds), each file timed back to back with ``cp`` of
  the same bytes, so both see the same disk and page-cache conditions; the ratio is
  hdfs MB/s divided by cp MB/s (write: local file -> HDFS vs cp; read: HDFS -> local file vs cp);
* small files: 5,000 files of 8 KiB written then read back; ``small_files_per_s`` counts both
  directions (10,000 file operations over their total time);
* snapshots: CREATESNAPSHOT of a 10,000-file tree, then GETSNAPSHOTDIFF after changing 1% of it
  (creates, appends, overwrites, deletes, renames): the slower of snapshot-to-snapshot and
  snapshot-to-current.

The server runs in its own process, as it would beside a real client. ``--json`` prints exactly
``large_write_ratio_to_cp``, ``large_read_ratio_to_cp``, ``small_files_per_s``, ``snapshot_10k_s``
and ``diff_10k_1pct_s``; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from hdfs import InsecureClient

MIB = 1024 * 1024
CHUNK = MIB


@dataclass(frozen=True)
class Sizes:
    large_files: int
    large_size: int
    small_files: int
    small_size: int
    tree_dirs: int
    tree_files_per_dir: int


FULL = Sizes(16, 64 * MIB, 5000, 8 * 1024, 100, 100)
QUICK = Sizes(4, 64 * MIB, 500, 8 * 1024, 20, 50)  # same file size as full: cp bursts on small files


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def webhdfs(root: Path) -> Iterator[str]:
    """A server in its own process over ``root``; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tandem_dev.embedded.webhdfs", "--root", str(root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise SystemExit("the WebHDFS server did not start")
        yield str(json.loads(line)["url"])
    finally:
        process.terminate()
        process.wait(30)


def timed(func: object, *args: object) -> float:
    start = time.perf_counter()
    func(*args)  # type: ignore[operator]
    return time.perf_counter() - start


def cp(source: Path, target: Path) -> None:
    subprocess.run(["cp", "-r", str(source), str(target)], check=True)


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        for _ in range(size // CHUNK):
            handle.write(os.urandom(CHUNK))
        handle.write(os.urandom(size % CHUNK))


def chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            yield block


def hdfs_put(client: InsecureClient, local: Path, remote: str) -> None:
    client.write(remote, data=chunks(local), overwrite=True)


def hdfs_get(client: InsecureClient, remote: str, local: Path) -> None:
    with client.read(remote, chunk_size=CHUNK) as reader, local.open("wb") as out:
        for block in reader:
            out.write(block)


def bench_large(client: InsecureClient, work: Path, sizes: Sizes) -> dict[str, float]:
    src, cp_w, cp_r, got = (work / name for name in ("src", "cp-write", "cp-read", "hdfs-read"))
    for folder in (src, cp_w, cp_r, got):
        folder.mkdir()
    for i in range(sizes.large_files):
        make_file(src / f"f{i}", sizes.large_size)
    t = {"cp_w": 0.0, "hdfs_w": 0.0, "cp_r": 0.0, "hdfs_r": 0.0}
    for i in range(sizes.large_files):  # interleaved: both see the same disk conditions
        t["cp_w"] += timed(cp, src / f"f{i}", cp_w / f"f{i}")
        t["hdfs_w"] += timed(hdfs_put, client, src / f"f{i}", f"/bench/large/f{i}")
    for i in range(sizes.large_files):
        t["cp_r"] += timed(cp, cp_w / f"f{i}", cp_r / f"f{i}")
        t["hdfs_r"] += timed(hdfs_get, client, f"/bench/large/f{i}", got / f"f{i}")
    for i in range(sizes.large_files):
        if (got / f"f{i}").stat().st_size != sizes.large_size:
            raise SystemExit(f"large file {i} came back with the wrong size")
    if (got / "f0").read_bytes() != (src / "f0").read_bytes():
        raise SystemExit("large file 0 came back different")
    total = sizes.large_files * sizes.large_size / 1e6
    rates = {key: total / value for key, value in t.items()}
    for folder in (src, cp_w, cp_r, got):
        shutil.rmtree(folder)
    return rates


def bench_small(client: InsecureClient, work: Path, sizes: Sizes) -> dict[str, float]:
    src, cp_dst, got = work / "small", work / "small-cp", work / "small-got"
    src.mkdir()
    got.mkdir()
    for i in range(sizes.small_files):
        (src / f"s{i:05d}").write_bytes(os.urandom(sizes.small_size))
    t_cp = timed(cp, src, cp_dst)
    client.makedirs("/bench/small")
    start = time.perf_counter()
    for i in range(sizes.small_files):
        client.write(f"/bench/small/s{i:05d}", data=(src / f"s{i:05d}").read_bytes(), overwrite=True)
    t_write = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(sizes.small_files):
        with client.read(f"/bench/small/s{i:05d}") as reader:
            (got / f"s{i:05d}").write_bytes(reader.read())
    t_read = time.perf_counter() - start
    if (got / "s00000").read_bytes() != (src / "s00000").read_bytes():
        raise SystemExit("small file 0 came back different")
    n = sizes.small_files
    return {"write": n / t_write, "read": n / t_read, "both": 2 * n / (t_write + t_read), "cp": n / t_cp}


def populate_tree(root: Path, sizes: Sizes) -> None:
    """Load the 10,000-file tree straight into a namespace (fast); it is served afterwards."""
    from tandem_dev.embedded.namespace import Namespace

    namespace = Namespace(root)
    try:
        user = getpass.getuser()
        for d in range(sizes.tree_dirs):
            for f in range(sizes.tree_files_per_dir):
                pending = namespace.begin_create(("tree", f"d{d:03d}", f"f{f:03d}"), user)
                pending.write(f"file {d}/{f}\n".encode() * 8)
                namespace.commit_write(pending)
    finally:
        namespace.close()


def change_one_percent(client: InsecureClient, sizes: Sizes) -> int:
    total = sizes.tree_dirs * sizes.tree_files_per_dir
    per_kind = max(1, total // 100 // 5)
    names = [(d, f) for f in range(sizes.tree_files_per_dir) for d in range(sizes.tree_dirs)]
    kinds = ("append", "overwrite", "delete", "rename", "create")
    for k, kind in enumerate(kinds):
        for d, f in names[k * per_kind : (k + 1) * per_kind]:
            path = f"/tree/d{d:03d}/f{f:03d}"
            if kind == "append":
                client.write(path, data=b"appended\n", append=True)
            elif kind == "overwrite":
                client.write(path, data=b"rewritten\n", overwrite=True)
            elif kind == "delete":
                client.delete(path)
            elif kind == "rename":
                client.rename(path, f"/tree/d{(d + 1) % sizes.tree_dirs:03d}/moved-{d}-{f}")
            else:
                client.write(f"/tree/d{d:03d}/new-{f}", data=b"new\n")
    return per_kind * len(kinds)


def bench_snapshots(work: Path, sizes: Sizes) -> dict[str, float]:
    root = work / "tree-root"
    populate_tree(root, sizes)
    with webhdfs(root) as url:
        client = InsecureClient(url, user=getpass.getuser())
        api = f"{url}/webhdfs/v1/tree"
        client.allow_snapshot("/tree")
        start = time.perf_counter()
        response = requests.put(api, params={"op": "CREATESNAPSHOT", "snapshotname": "s1"})
        t_snapshot = time.perf_counter() - start
        response.raise_for_status()
        changed = change_one_percent(client, sizes)
        requests.put(api, params={"op": "CREATESNAPSHOT", "snapshotname": "s2"}).raise_for_status()
        timings = {}
        for label, new in (("s1->s2", "s2"), ("s1->current", "")):
            start = time.perf_counter()
            response = requests.get(
                api, params={"op": "GETSNAPSHOTDIFF", "oldsnapshotname": "s1", "snapshotname": new}
            )
            timings[label] = time.perf_counter() - start
            response.raise_for_status()
            entries = len(response.json()["SnapshotDiffReport"]["diffList"])
    return {
        "snapshot": t_snapshot,
        "diff": max(timings.values()),
        "diff_between": timings["s1->s2"],
        "diff_current": timings["s1->current"],
        "changed": changed,
        "entries": entries,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON summary on stdout")
    parser.add_argument("--quick", action="store_true", help="about a tenth of the full size")
    parser.add_argument("--dir", type=Path, default=None, help="where to work (default: the temp dir)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    tree = sizes.tree_dirs * sizes.tree_files_per_dir
    with tempfile.TemporaryDirectory(prefix="tandem-bench-", dir=args.dir) as tmp:
        work = Path(tmp)
        with webhdfs(work / "root") as url:
            client = InsecureClient(url, user=getpass.getuser())
            log(f"large files: {sizes.large_files} x {sizes.large_size // MIB} MiB ...")
            large = bench_large(client, work, sizes)
            log(f"small files: {sizes.small_files} x {sizes.small_size // 1024} KiB ...")
            small = bench_small(client, work, sizes)
        log(f"snapshots of a {tree}-file tree ...")
        snap = bench_snapshots(work, sizes)
    summary = {
        "large_write_ratio_to_cp": round(large["hdfs_w"] / large["cp_w"], 3),
        "large_read_ratio_to_cp": round(large["hdfs_r"] / large["cp_r"], 3),
        "small_files_per_s": round(small["both"], 1),
        "snapshot_10k_s": round(snap["snapshot"], 4),
        "diff_10k_1pct_s": round(snap["diff"], 4),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    for label, key, ratio in (
        ("write", "w", "large_write_ratio_to_cp"),
        ("read ", "r", "large_read_ratio_to_cp"),
    ):
        print(
            f"large {label}  hdfs {large['hdfs_' + key]:7.0f} MB/s   cp {large['cp_' + key]:7.0f} MB/s   "
            f"ratio {summary[ratio]:.2f}"
        )
    print(
        f"small files  write {small['write']:6.0f} files/s   read {small['read']:6.0f} files/s   "
        f"both {small['both']:6.0f} files/s   cp {small['cp']:7.0f} files/s"
    )
    print(f"snapshot     CREATESNAPSHOT of {tree} files {snap['snapshot'] * 1000:7.1f} ms")
    print(
        f"diff         {snap['changed']} changes, {snap['entries']} entries: s1->s2 "
        f"{snap['diff_between'] * 1000:.1f} ms, s1->current {snap['diff_current'] * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
