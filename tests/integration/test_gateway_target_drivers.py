"""Every target driver against its real server, through the one interface the gateway uses:
the embedded WebHDFS (a cluster of clusters.yaml), a local directory (a NAS mount) and a real
S3 server (SeaweedFS on loopback). What each store holds is checked with its own tools (a raw
WebHDFS client, ``os``, botocore), not with the driver under test."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hdfs import InsecureClient

from tandem.errors import RemoteHdfsError
from tandem.gateway.marks import temp_name
from tandem.gateway.plan import Target as TargetSpec
from tandem.gateway.targets import WRITTEN_MS, ClusterTarget, Target, TargetFull, connect_target
from tandem.hdfs.client import is_missing
from tandem.policy import load_topology
from tandem_dev.embedded.manager import RunningClusters
from tandem_dev.s3 import SeaweedS3

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20


@dataclass
class Driven:
    """A target under test and a way to look at its store without it."""

    kind: str
    target: Target
    raw: Any  # InsecureClient | Path | (botocore client, bucket, prefix)

    def stored(self, path: str) -> bytes:
        if self.kind in ("cluster", "webhdfs-uri"):
            with self.raw.read(path) as reader:
                data: bytes = reader.read()
            return data
        if self.kind == "local":
            return (self.raw / path.lstrip("/")).read_bytes()
        client, bucket, prefix = self.raw
        body: bytes = client.get_object(Bucket=bucket, Key=f"{prefix}{path}")["Body"].read()
        return body

    def stored_meta(self, path: str) -> dict[str, str]:
        if self.kind in ("cluster", "webhdfs-uri"):
            found = self.raw._session.get(
                f"{self.raw.url}/webhdfs/v1{self.raw.base}{path}",
                params={"op": "GETXATTRS", "encoding": "text", "user.name": "hdfs"},
            ).json()["XAttrs"]
            return {x["name"].removeprefix("user.tandem."): json.loads(x["value"]) for x in found}
        if self.kind == "local":
            full = self.raw / path.lstrip("/")
            return {
                n.removeprefix("user.tandem."): os.getxattr(full, n).decode()
                for n in os.listxattr(full)
                if n.startswith("user.tandem.")
            }
        client, bucket, prefix = self.raw
        head = client.head_object(Bucket=bucket, Key=f"{prefix}{path}")
        return {k.removeprefix("tandem-"): v for k, v in head["Metadata"].items()}


@pytest.fixture(params=["cluster", "local", "s3", "webhdfs-uri"])
def driven(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Driven]:
    kind = request.param
    topology = load_topology(ROOT / "include" / "clusters.yaml")
    if kind == "cluster":
        embedded: RunningClusters = request.getfixturevalue("embedded")
        request.getfixturevalue("airflow_conns")
        spec = TargetSpec(cluster="standby", root="/drivers")
        target = connect_target(spec, topology)()
        assert isinstance(target, ClusterTarget)
        base = f"/drivers-{request.node.name[-20:].replace('[', '-').replace(']', '')}-{time.monotonic_ns()}"
        raw = InsecureClient(embedded["standby"].webhdfs_url, user="hdfs")
        raw.makedirs(base)
        yield Driven(kind, _Rooted(target, base), _RootedRaw(raw, base))
        raw.delete(base, recursive=True)
        return
    if kind == "webhdfs-uri":
        # a cluster outside clusters.yaml: fsspec's own webhdfs driver, through a connection
        embedded = request.getfixturevalue("embedded")
        base = f"/drivers-uri-{time.monotonic_ns()}"
        raw = InsecureClient(embedded["standby"].webhdfs_url, user="hdfs")
        raw.makedirs(base)
        port = int(embedded["standby"].webhdfs_url.rsplit(":", 1)[1])
        monkeypatch.setenv(
            "AIRFLOW_CONN_TANDEM_TEST_WEBHDFS",
            json.dumps({"conn_type": "webhdfs", "host": "127.0.0.1", "port": port, "login": "hdfs"}),
        )
        spec = TargetSpec(uri=f"webhdfs://127.0.0.1:{port}{base}", conn_id="tandem_test_webhdfs", root="/r")
        yield Driven(kind, connect_target(spec, topology)(), _RootedRaw(raw, base))
        raw.delete(base, recursive=True)
        return
    if kind == "local":
        nas = tmp_path / "nas"
        nas.mkdir()
        target = connect_target(TargetSpec(uri=f"file://{nas}", root="/r"), topology)()
        yield Driven(kind, target, nas)
        return
    server: SeaweedS3 = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    monkeypatch.setenv("AIRFLOW_CONN_TANDEM_TEST_S3", server.airflow_connection())
    spec = TargetSpec(uri=f"s3://{bucket}/pre", conn_id="tandem_test_s3", root="/r")
    yield Driven(kind, connect_target(spec, topology)(), (server.client(), bucket, "pre"))


class _Rooted:
    """A cluster target seen from a private directory, so tests never collide on the shared standby."""

    def __init__(self, target: Any, base: str) -> None:
        self._t, self._base = target, base

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._t, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            args = tuple(self._base + a if isinstance(a, str) and a.startswith("/") else a for a in args)
            return attr(*args, **kwargs)

        return call


class _RootedRaw:
    def __init__(self, client: InsecureClient, base: str) -> None:
        self._c, self.base = client, base
        self.url, self._session = client.url, client._session

    def read(self, path: str) -> Any:
        return self._c.read(self.base + path)


def test_a_write_carries_its_metadata_and_reads_back(driven: Driven) -> None:
    target = driven.target
    target.write_with_meta("/d/a.bin", [b"x" * 1000, b"y" * 24], {WRITTEN_MS: "1234567890123"})
    status = target.status("/d/a.bin")
    assert status is not None and not status.is_dir and status.length == 1024
    assert driven.stored("/d/a.bin") == b"x" * 1000 + b"y" * 24
    assert driven.stored_meta("/d/a.bin")[WRITTEN_MS] == "1234567890123"
    assert target.meta("/d/a.bin")[WRITTEN_MS] == "1234567890123"
    with target.open("/d/a.bin", offset=998, length=4) as chunks:
        assert b"".join(chunks) == b"xxyy"
    assert target.read_bytes("/d/a.bin") == b"x" * 1000 + b"y" * 24


def test_refusals_carry_hadoops_exception_names(driven: Driven) -> None:
    target = driven.target
    target.write("/r/f", b"1")
    with pytest.raises(RemoteHdfsError) as exists:
        target.write("/r/f", b"2", overwrite=False)
    assert exists.value.exception == "FileAlreadyExistsException"
    assert target.status("/r/missing") is None
    with pytest.raises(RemoteHdfsError) as missing:
        target.list("/r/no-such-dir")
    assert is_missing(missing.value)
    target.write("/r/g", b"3")
    with pytest.raises(RemoteHdfsError) as rename:
        target.rename("/r/g", "/r/f")
    # WebHDFS answers {"boolean": false} (no exception name); the other stores name it
    assert rename.value.exception == (None if driven.kind == "cluster" else "FileAlreadyExistsException")
    assert driven.stored("/r/f") == b"1"


def test_replace_publishes_whole_with_metadata_and_rename_moves_trees(driven: Driven) -> None:
    target = driven.target
    target.write("/p/final", b"old")
    target.write_with_meta("/p/.tandem-gw.1.final", b"new", {WRITTEN_MS: "7"})
    target.replace("/p/.tandem-gw.1.final", "/p/final")
    assert driven.stored("/p/final") == b"new" and target.status("/p/.tandem-gw.1.final") is None
    assert target.meta("/p/final")[WRITTEN_MS] == "7"
    for i in range(3):
        target.write(f"/t/src/sub/f{i}", f"{i}".encode())
    target.rename("/t/src", "/t/dst")
    assert target.status("/t/src/sub/f0") is None
    assert sorted(e.relpath for e in target.walk("/t/dst") if not e.status.is_dir) == [
        "sub/f0",
        "sub/f1",
        "sub/f2",
    ]
    assert [s.path_suffix for s in target.list("/t/dst/sub")] == ["f0", "f1", "f2"]
    assert target.delete("/t/dst", recursive=True) is True
    assert target.delete("/t/dst", recursive=True) is False
    assert target.status("/t/dst/sub/f1") is None


def test_a_large_stream_round_trips_in_bounded_parts(driven: Driven) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB
    target = driven.target

    def body() -> Iterator[bytes]:
        for i in range(20):
            yield bytes([i]) + block[1:]

    target.write_with_meta("/big/f", body(), {WRITTEN_MS: "1"})
    assert target.status("/big/f").length == 20 * MIB  # type: ignore[union-attr]
    with target.open("/big/f") as chunks:
        got = b"".join(chunks)
    assert got == b"".join(body())


def test_space_is_the_stores_own_figure(driven: Driven) -> None:
    space = driven.target.space("/d")
    if driven.kind == "s3":
        assert space.free is None and space.source == "unlimited"  # no capacity of its own
    else:
        assert space.free is not None and space.free > 0
        assert space.source in {"disk", "fs-status", "quota"}


@pytest.mark.parametrize("driven", ["cluster", "webhdfs-uri"], indirect=True)
def test_an_hdfs_target_counts_room_by_the_roots_space_quota(driven: Driven) -> None:
    """GETQUOTAUSAGE of the plan's root: its space quota minus what it consumes, replicas counted."""
    driven.target.write_with_meta("/q/a", b"x" * 1000, {WRITTEN_MS: "1"})
    quota = 1_000_000
    answer = driven.raw._session.put(
        f"{driven.raw.url}/webhdfs/v1{driven.raw.base}/q",
        params={"op": "SETQUOTA", "namespacequota": -1, "storagespacequota": quota, "user.name": "hdfs"},
    )
    assert answer.status_code == 200, answer.text
    space = driven.target.space("/q")
    assert space.source == "quota" and space.factor >= 1
    assert space.used == 1000 * space.factor and space.free == quota - space.used
    assert space.fits((quota - space.used) // space.factor) and not space.fits(quota)


def test_a_configured_capacity_counts_what_the_plan_holds(tmp_path: Path) -> None:
    nas = tmp_path / "nas"
    (nas / "root").mkdir(parents=True)
    topology = load_topology(ROOT / "include" / "clusters.yaml")
    target = connect_target(TargetSpec(uri=f"file://{nas}", root="/root", capacity=10_000), topology)()
    target.write("/root/a", b"a" * 3000)
    target.write("/elsewhere", b"b" * 5000)  # outside the plan's root: not the plan's
    space = target.space("/root")
    assert (space.free, space.used, space.source) == (7000, 3000, "capacity")


def test_an_s3_store_that_does_not_answer_is_down_not_refusing(tmp_path: Path) -> None:
    from tandem.gateway.sides import SideDown, is_unreachable

    server = SeaweedS3(tmp_path / "s3")
    server.start()
    bucket = server.make_bucket("outage")
    os.environ["AIRFLOW_CONN_TANDEM_TEST_S3_OUT"] = server.airflow_connection()
    try:
        topology = load_topology(ROOT / "include" / "clusters.yaml")
        spec = TargetSpec(uri=f"s3://{bucket}", conn_id="tandem_test_s3_out", root="/r")
        target = connect_target(spec, topology)()
        target.write("/x", b"1")
        server.stop()
        with pytest.raises(SideDown) as down:
            target.write("/y", b"2")
        assert is_unreachable(down.value)
    finally:
        os.environ.pop("AIRFLOW_CONN_TANDEM_TEST_S3_OUT", None)
        server.stop()


def test_a_full_directory_is_target_full(tmp_path: Path) -> None:
    """ENOSPC from the store (a tmpfs of 1 MiB) is TargetFull, which the gateway keeps pending."""
    import shutil
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        topology = load_topology(ROOT / "include" / "clusters.yaml")
        target = connect_target(TargetSpec(uri=f"file://{mount}", root="/r"), topology)()
        with pytest.raises(TargetFull):
            target.write("/too-big", [b"z" * MIB, b"z" * MIB])
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_write_that_fails_midway_leaves_nothing_under_its_name(driven: Driven) -> None:
    def broken() -> Iterator[bytes]:
        yield b"a" * MIB
        raise ConnectionResetError("the client went away")

    with pytest.raises(Exception, match="went away"):
        driven.target.write_with_meta("/half/f", broken(), {WRITTEN_MS: "1"})
    assert driven.target.status("/half/f") is None  # an upload in progress is aborted, not completed


def test_a_read_only_file_still_takes_its_metadata(driven: Driven) -> None:
    driven.target.write_with_meta("/ro/f", b"frozen", {WRITTEN_MS: "42"}, permission="444")
    assert driven.stored_meta("/ro/f")[WRITTEN_MS] == "42"
    status = driven.target.status("/ro/f")
    assert status is not None and (driven.kind == "s3" or status.permission == "444")


ODD_NAMES = ["a*", "f[1].csv", "why?.txt", "a b.txt", "50%.txt", "x#y.txt", "a+b.txt", "ü€.txt"]
NEIGHBOURS = ["abc", "a-other", "f1.csv", "whyX.txt"]  # what a wildcard reading would also match


def test_names_with_wildcard_characters_name_exactly_one_file(driven: Driven) -> None:
    """HDFS and the gateway take ``*``, ``?`` and ``[`` in file names; a driver that reads them as
    patterns (s3fs's rm, mv and copy do) would publish elsewhere or delete a neighbour's backup."""
    target = driven.target
    for name in ODD_NAMES + NEIGHBOURS:
        temp = temp_name(f"/d/{name}")
        target.write_with_meta(temp, name.encode(), {WRITTEN_MS: "5"})
        target.replace(temp, f"/d/{name}")
    assert sorted(s.path_suffix for s in target.list("/d")) == sorted(ODD_NAMES + NEIGHBOURS)
    for name in ODD_NAMES:
        assert driven.stored(f"/d/{name}") == name.encode(), name
        assert target.meta(f"/d/{name}").get(WRITTEN_MS, "5") == "5", name
    for name in ("a*", "f[1].csv", "why?.txt"):
        assert target.delete(f"/d/{name}") is True
    left = sorted(s.path_suffix for s in target.list("/d"))
    assert left == sorted([n for n in ODD_NAMES if n not in ("a*", "f[1].csv", "why?.txt")] + NEIGHBOURS)

    # trees: moved and deleted whole, siblings sharing a prefix untouched
    for path in ("/t[1]/x", "/t[1]/sub/y", "/t[1]x/z", "/t1/w"):
        target.write(path, path.encode())
    target.rename("/t[1]", "/moved[1]")
    assert driven.stored("/moved[1]/sub/y") == b"/t[1]/sub/y" and target.status("/t[1]") is None
    assert target.delete("/moved[1]", recursive=True) is True
    assert driven.stored("/t[1]x/z") == b"/t[1]x/z" and driven.stored("/t1/w") == b"/t1/w"


def test_an_s3_copy_above_s3fs_managed_copy_size_keeps_its_metadata(
    s3_server: SeaweedS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """s3fs copies objects over 150 MiB part by part, which drops their metadata (the write time
    and the encryption envelope); publishing copies them whole, metadata with them."""
    monkeypatch.setenv("AIRFLOW_CONN_TANDEM_TEST_S3", s3_server.airflow_connection())
    topology = load_topology(ROOT / "include" / "clusters.yaml")
    spec = TargetSpec(uri=f"s3://{s3_bucket}/pre", conn_id="tandem_test_s3", root="/r")
    target = connect_target(spec, topology)()
    meta = {WRITTEN_MS: "1234", "enc-alg": "AES-256-GCM-STREAM-1"}
    temp = temp_name("/r/big.bin")
    target.write_with_meta(temp, (b"\x07" * MIB for _ in range(151)), meta)
    target.replace(temp, "/r/big.bin")
    assert target.status("/r/big.bin").length == 151 * MIB  # type: ignore[union-attr]
    assert target.meta("/r/big.bin") == meta


def test_a_symbolic_link_never_leads_a_nas_target_out_of_its_directory(tmp_path: Path) -> None:
    nas, outside = tmp_path / "nas", tmp_path / "outside"
    (nas / "r").mkdir(parents=True)
    outside.mkdir()
    (outside / "theirs").write_bytes(b"not the gateway's")
    (nas / "r" / "d").symlink_to(outside, target_is_directory=True)  # made by anyone on the NAS
    (nas / "r" / "inner").symlink_to(nas / "r" / "e", target_is_directory=True)
    (nas / "r" / "e").mkdir()
    topology = load_topology(ROOT / "include" / "clusters.yaml")
    target = connect_target(TargetSpec(uri=f"file://{nas}", root="/r"), topology)()
    target.write("/r/x", b"x")
    for attempt in (
        lambda: target.write_with_meta("/r/d/x", b"hello", {WRITTEN_MS: "1"}),
        lambda: target.replace("/r/x", "/r/d/x"),
        lambda: target.delete("/r/d/theirs"),
        lambda: target.delete("/r/d", recursive=True),
    ):
        with pytest.raises(RemoteHdfsError, match="through a symbolic link") as refused:
            attempt()
        assert refused.value.exception == "AccessControlException"
    assert sorted(p.name for p in outside.iterdir()) == ["theirs"]
    target.write("/r/inner/y", b"inside")  # a link that stays inside is followed
    assert (nas / "r" / "e" / "y").read_bytes() == b"inside"
