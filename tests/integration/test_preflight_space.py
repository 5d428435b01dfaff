"""The preflight's space check from snapshot diffs (tandem.backup.run): what a dataset grew since
the last point, sized from the diff at the cost of the change, equals what two walks would say;
and an incremental run that cannot fit under the target's quota is refused before anything is
written, while one that needs no more space runs without reading any quota."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hdfs import InsecureClient

from tandem import backup, catalog
from tandem.backup.run import _growth
from tandem.errors import PreflightError
from tandem.hdfs.client import Hdfs
from tandem.policy import load_policy, load_topology
from tandem.runtime import Clusters
from tandem_dev.embedded.webhdfs import WebHdfsServer
from tests.instants import recent_hour
from tests.integration.test_backup_steps import TOPOLOGY_FILE, make_policy

pytestmark = pytest.mark.integration

ROOT = "/r"


@pytest.fixture(scope="module")
def hdfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hdfs]:
    with WebHdfsServer(tmp_path_factory.mktemp("preflight") / "root", superuser="hdfs") as server:
        yield Hdfs(InsecureClient(server.url, user="hdfs"))


def _paths(hdfs: Hdfs, top: str) -> tuple[list[str], list[str]]:
    entries = [e for e in hdfs.walk(top)] if hdfs.status(top) else []
    dirs = [top] + [f"{top}/{e.relpath}" for e in entries if e.status.is_dir]
    files = [f"{top}/{e.relpath}" for e in entries if not e.status.is_dir]
    return dirs, files


def _change(hdfs: Hdfs, rnd: random.Random, step: int) -> None:
    dirs, files = _paths(hdfs, ROOT)
    outside_dirs, outside_files = _paths(hdfs, "/outside")
    where = rnd.choice(dirs)
    some = rnd.choice(files) if files else None
    folder = rnd.choice(dirs[1:]) if len(dirs) > 1 else None
    changes = [
        lambda: hdfs.write(f"{where}/f{rnd.randrange(5)}", b"x" * rnd.randrange(1, 3000)),
        lambda: hdfs.mkdirs(f"{where}/d{rnd.randrange(3)}"),
        lambda: some and hdfs.write(some, b"+" * rnd.randrange(1, 500), append=True),
        lambda: some and hdfs.rename(some, f"{where}/m{step}"),
        lambda: folder and hdfs.rename(folder, f"{where}/dm{step}"),
        lambda: some and hdfs.delete(some),
        lambda: folder and hdfs.delete(folder, recursive=True),
        lambda: folder and hdfs.set_permission(folder, rnd.choice(["755", "700"])),
        lambda: some and hdfs.rename(some, f"/outside/o{step}"),  # leaves the dataset
        lambda: outside_files and hdfs.rename(rnd.choice(outside_files), f"{where}/in{step}"),
        lambda: hdfs.write(f"/outside/w{step}", b"o" * rnd.randrange(1, 2000)),
        lambda: some and hdfs.write(some, b"r" * rnd.randrange(1, 3000), replication=2),
    ]
    del outside_dirs
    try:
        rnd.choices(changes, weights=[20, 6, 8, 8, 6, 8, 3, 4, 4, 4, 4, 5])[0]()
    except Exception:  # a refusal (a name taken) is part of the history
        return


def _space(hdfs: Hdfs, path: str) -> int:
    return int(hdfs.content_summary(path)["spaceConsumed"])


@pytest.mark.parametrize("seed", range(5))
def test_growth_from_the_diff_equals_two_walks(hdfs: Hdfs, seed: int) -> None:
    rnd = random.Random(seed)
    for top in (ROOT, "/outside"):
        if hdfs.status(top):
            for snap in hdfs.snapshots(top) if top == ROOT else ():
                hdfs.delete_snapshot(top, snap.name)
            hdfs.delete(top, recursive=True)
        hdfs.mkdirs(top)
    hdfs.allow_snapshot(ROOT)
    bases: list[str] = []
    for step in range(60):
        _change(hdfs, rnd, step)
        if step % 15 == 0:
            bases.append(f"s{step}")
            hdfs.create_snapshot(ROOT, bases[-1])
        if step % 5 == 4:
            for base in bases:
                expected = _space(hdfs, ROOT) - _space(hdfs, f"{ROOT}/.snapshot/{base}")
                assert _growth(hdfs, ROOT, base, 4) == expected, f"seed {seed} step {step} since {base}"


def test_an_incremental_run_that_cannot_fit_is_refused_before_anything_is_written(
    airflow_conns: object, tmp_path: Path
) -> None:
    clusters = Clusters(load_topology(TOPOLOGY_FILE))
    top, t0 = "/data/preflight_space/details", recent_hour(10)
    policy = load_policy(make_policy(tmp_path, "preflight_space", top), clusters.topology)
    src, dst = clusters.hdfs("primary"), clusters.hdfs("standby")
    for i in range(4):
        src.write(f"{top}/part-{i}/f.bin", b"a" * 10_000)
    first = backup.run_once(backup.Run(policy, clusters.topology, t0), clusters)

    # the same bytes rewritten and a file deleted: no more space needed, whatever the quota
    used = dst.quota_usage(top).space_consumed
    dst.set_quota(top, -1, used)
    src.write(f"{top}/part-0/f.bin", b"b" * 10_000)
    src.delete(f"{top}/part-1/f.bin")
    second = backup.run_once(backup.Run(policy, clusters.topology, t0 + timedelta(hours=1)), clusters)
    assert second["mode"] == "incremental" and second["base_point"] == first["point"]

    # more than the quota leaves: refused by preflight, before any snapshot or byte
    src.write(f"{top}/part-2/big.bin", b"c" * 30_000)
    dst.set_quota(top, -1, dst.quota_usage(top).space_consumed + 20_000)
    snapshots = {s.name for s in dst.snapshots(top)}, {s.name for s in src.snapshots(top)}
    with pytest.raises(PreflightError, match=r"target out of quota: .* needs up to 30000 more bytes"):
        backup.run_once(backup.Run(policy, clusters.topology, t0 + timedelta(hours=2)), clusters)
    assert ({s.name for s in dst.snapshots(top)}, {s.name for s in src.snapshots(top)}) == snapshots
    assert dst.status(f"{top}/part-2/big.bin") is None
    assert catalog.latest(dst, "preflight_space").point == second["point"]
    dst.set_quota(top, -1, -1)


def test_growth_under_a_renamed_directory_is_counted_once(hdfs: Hdfs) -> None:
    top = "/renamed"
    hdfs.mkdirs(top)
    for name, size in (("old", 100), ("gone", 200), ("kept", 300)):
        hdfs.write(f"{top}/d/{name}", b"x" * size)
    hdfs.write(f"{top}/f", b"y" * 50)
    hdfs.allow_snapshot(top)
    hdfs.create_snapshot(top, "base")
    hdfs.rename(f"{top}/d", f"{top}/e")
    hdfs.write(f"{top}/e/new", b"n" * 1000)
    hdfs.write(f"{top}/e/old", b"+" * 10, append=True)
    hdfs.delete(f"{top}/e/gone")
    hdfs.rename(f"{top}/f", f"{top}/e/f")  # a file moved into the renamed directory
    entries = {(e.type.value, e.source, e.target) for e in hdfs.snapshot_diff(top, "base", "").entries}
    assert ("CREATE", "d/new", None) in entries  # beneath the rename, by its earlier path
    assert _growth(hdfs, top, "base", 4) == _space(hdfs, top) - _space(hdfs, f"{top}/.snapshot/base")
    assert _growth(hdfs, top, "base", 4) == 1000 + 10 - 200
    hdfs.mkdirs(f"{top}/d")  # a new directory under the old name, holding a new "old"
    hdfs.write(f"{top}/d/old", b"o" * 7)
    assert _growth(hdfs, top, "base", 4) == 1000 + 10 - 200 + 7
