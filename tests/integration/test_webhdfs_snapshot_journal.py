"""The embedded NameNode's change journal: a snapshot diff from it equals the whole-tree diff.

GETSNAPSHOTDIFF (and GETSNAPSHOTDIFFLISTING) load only the inodes the journal names and the
directories above them (tandem_dev.embedded.journal). Every history here is fixed by its seed, and
each diff is computed both ways on the same namespace: by the journal, and with the journal
ignored (the whole trees). Also: a checksum kept during CREATE equals the one read back from disk,
and the request log counts what a server answered.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import requests

from tandem_dev.embedded import journal, request_log
from tandem_dev.embedded.checksum import compute
from tandem_dev.embedded.namespace import Namespace
from tandem_dev.embedded.webhdfs import WebHdfsServer

USER = "hdfs"


def _step(
    ns: Namespace, rnd: random.Random, files: set[tuple[str, ...]], dirs: list[tuple[str, ...]]
) -> None:
    """One random change; refusals (a name taken, a path gone) are part of the history too."""
    op = rnd.random()
    where = rnd.choice(dirs)
    try:
        if op < 0.3:
            path = (*where, f"f{rnd.randrange(20)}")
            pending = ns.begin_create(path, USER, overwrite=True)
            pending.write(b"x" * rnd.randrange(5))
            ns.commit_write(pending)
            files.add(path)
        elif op < 0.4:
            path = (*where, f"d{rnd.randrange(8)}")
            ns.mkdirs(path, USER)
            dirs.append(path)
        elif op < 0.5 and files:
            path = rnd.choice(sorted(files))
            ns.delete(path)
            files.discard(path)
        elif op < 0.6 and files:
            path = rnd.choice(sorted(files))
            moved = (*where, f"m{rnd.randrange(20)}")
            ns.rename(path, moved)
            files.discard(path)
            files.add(moved)
        elif op < 0.7 and len(dirs) > 1:
            ns.rename(rnd.choice(dirs[1:]), (*where, f"dm{rnd.randrange(8)}"))
        elif op < 0.75 and len(dirs) > 1:
            ns.delete(rnd.choice(dirs[1:]), recursive=True)
        elif op < 0.85 and files:
            ns.set_permission(rnd.choice(sorted(files)), rnd.choice([0o644, 0o600]))
        elif files:
            pending = ns.begin_append(rnd.choice(sorted(files)), USER)
            pending.write(b"y")
            ns.commit_write(pending)
    except Exception:  # the namespace refused: the history goes on
        return


def _both_ways(
    ns: Namespace, monkeypatch: pytest.MonkeyPatch, scope: tuple[str, ...], old: str, new: str
) -> tuple[object, object]:
    def attempt() -> object:
        try:
            return (ns.snapshot_diff(scope, old, new), ns.snapshot_diff_listing(scope, old, new))
        except Exception as exc:  # a refusal must be the same refusal
            return repr(exc)

    by_journal = attempt()
    with monkeypatch.context() as patched:
        patched.setattr(journal, "changed_between", lambda *_: None)
        whole = attempt()
    return by_journal, whole


@pytest.mark.parametrize("seed", range(6))
def test_a_diff_by_the_journal_equals_the_whole_tree_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rnd = random.Random(seed)
    ns = Namespace(tmp_path / "ns", superuser=USER)
    try:
        ns.mkdirs(("r",), USER)
        ns.allow_snapshot(("r",))
        files: set[tuple[str, ...]] = set()
        dirs: list[tuple[str, ...]] = [("r",)]
        snapshots: list[str] = []
        compared = 0
        for step in range(150):
            _step(ns, rnd, files, dirs)
            if rnd.random() < 0.1:
                snapshots.append(ns.create_snapshot(("r",), f"s{step}").rsplit("/", 1)[1])
            if len(snapshots) > 3 and rnd.random() < 0.05:
                ns.delete_snapshot(("r",), snapshots.pop(rnd.randrange(len(snapshots))))
            if snapshots and rnd.random() < 0.3:
                old, new = rnd.choice(snapshots), rnd.choice([*snapshots, ""])
                for scope in [("r",), *[d for d in dirs if len(d) > 1][:2]]:
                    by_journal, whole = _both_ways(ns, monkeypatch, scope, old, new)
                    assert by_journal == whole, f"seed {seed} step {step}: {scope} {old} -> {new or 'now'}"
                    compared += 1
        assert compared > 10
    finally:
        ns.close()


def test_a_checksum_kept_during_create_equals_the_one_read_from_disk(tmp_path: Path) -> None:
    ns = Namespace(tmp_path / "ns", superuser=USER, block_size=1 << 20)
    try:
        data = random.Random(7).randbytes((3 << 20) + 777)
        pending = ns.begin_create(("f",), USER)
        for start in range(0, len(data), 100_003):  # pieces that straddle CRC chunks and blocks
            pending.write(data[start : start + 100_003])
        ns.commit_write(pending)
        kept = ns.checksum(("f",))
        source = tmp_path / "copy"
        source.write_bytes(data)
        with source.open("rb") as handle:
            assert kept == compute(handle.fileno(), len(data), 1 << 20)
    finally:
        ns.close()


def test_the_request_log_counts_requests_and_connections(tmp_path: Path) -> None:
    log_file = tmp_path / "requests.log"
    logged = request_log.RequestLog(log_file)
    with WebHdfsServer(tmp_path / "root", request_log=logged) as server, requests.Session() as session:
        url = f"{server.url}/webhdfs/v1/a?op=MKDIRS&user.name={USER}"
        session.put(url).raise_for_status()
        mark = request_log.size(log_file)
        for _ in range(3):
            session.get(f"{server.url}/webhdfs/v1/a?op=GETFILESTATUS").raise_for_status()
    counted = request_log.read(log_file, mark)
    assert counted.requests == {"namenode GET GETFILESTATUS": 3}
    assert counted.total_connections == 0  # kept alive
    assert request_log.read(log_file).connections == {"namenode": 1}
