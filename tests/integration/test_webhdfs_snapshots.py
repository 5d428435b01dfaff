"""Snapshots on the embedded WebHDFS server: HDFS's rules, frozen contents, and diff reports
exactly as the NameNode reports them (also parsed by tandem's own WebHDFS payload parsers)."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hdfs import HdfsError, InsecureClient

from tandem.hdfs.types import DiffType, SnapshotDiffReport, SnapshotInfo, SnapshottableDir
from tandem_dev.embedded.webhdfs import WebHdfsServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHdfsServer]:
    with WebHdfsServer(tmp_path_factory.mktemp("webhdfs-snap") / "root", superuser="hdfs") as srv:
        yield srv


@pytest.fixture
def client(server: WebHdfsServer) -> InsecureClient:
    return InsecureClient(server.url, user="hdfs")


@pytest.fixture
def root(client: InsecureClient) -> str:
    path = f"/snap-{uuid.uuid4().hex[:10]}"
    client.makedirs(path)
    return path


def call(server: WebHdfsServer, method: str, path: str, op: str, **params: str) -> requests.Response:
    query = {"op": op, "user.name": "hdfs", **params}
    return requests.request(method, f"{server.url}/webhdfs/v1{path}", params=query)


def diff(server: WebHdfsServer, path: str, old: str | None, new: str | None) -> dict[str, Any]:
    params = {k: v for k, v in (("oldsnapshotname", old), ("snapshotname", new)) if v is not None}
    response = call(server, "GET", path, "GETSNAPSHOTDIFF", **params)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()["SnapshotDiffReport"]
    return report


def entries(report: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return sorted((e["type"], e["sourcePath"], e.get("targetPath")) for e in report["diffList"])


def exception(response: requests.Response) -> str:
    return str(response.json()["RemoteException"]["exception"])


def fingerprint(client: InsecureClient, path: str) -> dict[str, Any]:
    """Every status field and every byte under ``path``, to compare a snapshot before and after."""
    seen: dict[str, Any] = {"": client.status(path)}
    for parent, _, files in client.walk(path):
        for name, status in client.list(parent, status=True):
            key = f"{parent}/{name}"[len(path) :]
            seen[key] = dict(status)
            if name in files:
                with client.read(f"{parent}/{name}") as reader:
                    seen[key]["sha256"] = hashlib.sha256(reader.read()).hexdigest()
                seen[key]["checksum"] = client.checksum(f"{parent}/{name}")
        seen[f"{parent}#acl"] = client.acl_status(parent)
    return seen


def build_tree(client: InsecureClient, root: str) -> None:
    for path, data in {
        "a/f1": b"f1", "a/f2": b"f2", "b/g1": b"g1", "c/h1": b"h1", "d/k1": b"k1", "d/k2": b"k2",
        "top.txt": b"top", "keep.txt": b"keep",
    }.items():  # fmt: skip
        client.write(f"{root}/{path}", data=data)


# ---------------------------------------------------------------------------------- basics


def test_create_list_and_read_snapshots(server: WebHdfsServer, client: InsecureClient, root: str) -> None:
    client.write(f"{root}/dir/file", data=b"0123456789")
    client.allow_snapshot(root)
    client.allow_snapshot(root)  # idempotent
    assert client.status(root)["snapshotEnabled"] is True
    assert "snapshotEnabled" not in client.status(f"{root}/dir")
    before = int(time.time() * 1000)
    assert client.create_snapshot(root, "s1") == f"{root}/.snapshot/s1"
    default = client.create_snapshot(root)
    after = int(time.time() * 1000)
    assert re.fullmatch(rf"{root}/\.snapshot/s\d{{8}}-\d{{6}}\.\d{{3}}", default)

    assert sorted(client.list(f"{root}/.snapshot")) == sorted(["s1", default.rsplit("/", 1)[1]])
    snap = client.status(f"{root}/.snapshot/s1")
    assert snap["type"] == "DIRECTORY" and before <= snap["modificationTime"] <= after
    assert snap["fileId"] == client.status(root)["fileId"]
    assert client.list(f"{root}/.snapshot/s1/dir") == ["file"]
    assert client.status(f"{root}/.snapshot/s1/dir/file")["length"] == 10
    assert (
        client.status(f"{root}/.snapshot/s1/dir/file")["fileId"]
        == client.status(f"{root}/dir/file")["fileId"]
    )
    with client.read(f"{root}/.snapshot/s1/dir/file", offset=3, length=4) as reader:
        assert reader.read() == b"3456"
    assert client.checksum(f"{root}/.snapshot/s1/dir/file") == client.checksum(f"{root}/dir/file")
    summary = client.content(f"{root}/.snapshot/s1")
    assert (summary["directoryCount"], summary["fileCount"], summary["length"]) == (2, 1, 10)
    missing = call(server, "GET", f"{root}/.snapshot/nope/dir", "GETFILESTATUS")
    assert missing.status_code == 404


def test_snapshots_are_read_only(server: WebHdfsServer, client: InsecureClient, root: str) -> None:
    client.write(f"{root}/f", data=b"x")
    client.allow_snapshot(root)
    client.create_snapshot(root, "s1")
    snap = f"{root}/.snapshot/s1"
    attempts = [
        ("PUT", f"{snap}/new", "MKDIRS", {}),
        ("PUT", f"{snap}/f", "SETPERMISSION", {"permission": "777"}),
        ("PUT", f"{snap}/f", "SETOWNER", {"owner": "mallory"}),
        ("PUT", f"{snap}/f", "RENAME", {"destination": f"{root}/g"}),
        ("PUT", f"{root}/f", "RENAME", {"destination": f"{snap}/g"}),
        ("DELETE", f"{snap}/f", "DELETE", {}),
        ("PUT", f"{snap}/f", "SETACL", {"aclspec": "user::rwx,group::r-x,other::---"}),
        ("POST", f"{snap}/f", "TRUNCATE", {"newlength": "0"}),
    ]
    for method, path, op, params in attempts:
        response = call(server, method, path, op, **params)
        assert response.status_code == 403, (op, path)
        assert exception(response) == "SnapshotAccessControlException", (op, path)
    for write in ({"append": True}, {"overwrite": True}):
        with pytest.raises(HdfsError) as excinfo:
            client.write(f"{snap}/f", data=b"y", **write)
        assert excinfo.value.exception == "SnapshotAccessControlException"
    with client.read(f"{snap}/f") as reader:
        assert reader.read() == b"x"


def test_snapshot_never_changes(client: InsecureClient, root: str) -> None:
    build_tree(client, root)
    client.set_acl(f"{root}/a", "user::rwx,user:carla:r-x,group::r-x,other::---")
    client.allow_snapshot(root)
    client.create_snapshot(root, "s1")
    frozen = fingerprint(client, f"{root}/.snapshot/s1")

    client.write(f"{root}/a/f1", data=b"appended", append=True)
    client.write(f"{root}/a/f2", data=b"overwritten", overwrite=True)
    requests.post(f"{client.url}/webhdfs/v1{root}/b/g1", params={"op": "TRUNCATE", "newlength": "1"})
    client.delete(f"{root}/c", recursive=True)
    client.rename(f"{root}/d", f"{root}/e")
    client.write(f"{root}/e/k1", data=b"more", append=True)
    client.set_permission(f"{root}/top.txt", "600")
    client.set_owner(f"{root}/keep.txt", owner="mallory", group="evil")
    client.set_times(f"{root}/keep.txt", access_time=1, modification_time=2)
    client.set_replication(f"{root}/keep.txt", 3)
    client.set_acl(f"{root}/a", "user:dave:rwx", clear=False)
    client.remove_acl(f"{root}/a")
    client.write(f"{root}/new", data=b"new")

    assert fingerprint(client, f"{root}/.snapshot/s1") == frozen
    with client.read(f"{root}/b/g1") as reader:
        assert reader.read() == b"g"
    with client.read(f"{root}/.snapshot/s1/b/g1") as reader:
        assert reader.read() == b"g1"


def test_snapshot_rules(server: WebHdfsServer, client: InsecureClient, root: str) -> None:
    client.makedirs(f"{root}/outer/inner/deep")
    client.makedirs(f"{root}/plain")
    not_allowed = call(server, "PUT", f"{root}/plain", "CREATESNAPSHOT", snapshotname="s")
    assert not_allowed.status_code == 403 and exception(not_allowed) == "SnapshotException"

    client.allow_snapshot(f"{root}/outer/inner")
    for nested in (f"{root}/outer", f"{root}/outer/inner/deep", root):
        response = call(server, "PUT", nested, "ALLOWSNAPSHOT")
        assert response.status_code == 403 and exception(response) == "SnapshotException", nested
        assert "Nested snapshottable directories not allowed" in response.json()["RemoteException"]["message"]

    client.create_snapshot(f"{root}/outer/inner", "s1")
    duplicate = call(server, "PUT", f"{root}/outer/inner", "CREATESNAPSHOT", snapshotname="s1")
    assert duplicate.status_code == 403 and exception(duplicate) == "SnapshotException"
    reserved = call(server, "PUT", f"{root}/outer/inner", "CREATESNAPSHOT", snapshotname=".snapshot")
    assert reserved.status_code == 400
    for path in (f"{root}/outer/inner", f"{root}/outer", root):
        refused = call(server, "DELETE", path, "DELETE", recursive="true")
        assert refused.status_code == 403 and exception(refused) == "SnapshotException", path
    moved = call(server, "PUT", f"{root}/outer", "RENAME", destination=f"{root}/elsewhere")
    assert moved.status_code == 403 and exception(moved) == "SnapshotException"
    disallow = call(server, "PUT", f"{root}/outer/inner", "DISALLOWSNAPSHOT")
    assert disallow.status_code == 403 and exception(disallow) == "SnapshotException"
    reserved_dir = call(server, "PUT", f"{root}/plain/.snapshot", "MKDIRS")
    assert reserved_dir.status_code == 400

    client.rename_snapshot(f"{root}/outer/inner", "s1", "s2")
    client.create_snapshot(f"{root}/outer/inner", "s3")
    clash = call(
        server, "PUT", f"{root}/outer/inner", "RENAMESNAPSHOT", oldsnapshotname="s2", snapshotname="s3"
    )
    assert clash.status_code == 403 and exception(clash) == "SnapshotException"
    gone = call(server, "DELETE", f"{root}/outer/inner", "DELETESNAPSHOT", snapshotname="s1")
    assert gone.status_code == 403 and exception(gone) == "SnapshotException"
    client.delete_snapshot(f"{root}/outer/inner", "s2")
    client.delete_snapshot(f"{root}/outer/inner", "s3")
    client.disallow_snapshot(f"{root}/outer/inner")
    client.disallow_snapshot(f"{root}/outer/inner")  # idempotent
    client.write(f"{root}/outer/a-file", data=b"x")
    for op in ("ALLOWSNAPSHOT", "DISALLOWSNAPSHOT"):  # HDFS: INodeDirectory.valueOf refuses a file
        on_file = call(server, "PUT", f"{root}/outer/a-file", op)
        assert on_file.status_code == 403 and exception(on_file) == "PathIsNotDirectoryException", op
    client.allow_snapshot(f"{root}/outer")  # no longer nested
    assert client.delete(f"{root}/outer/inner", recursive=True) is True


def test_snapshot_lists(server: WebHdfsServer, client: InsecureClient, root: str) -> None:
    client.makedirs(f"{root}/one")
    client.allow_snapshot(f"{root}/one")
    client.create_snapshot(f"{root}/one", "first")
    client.create_snapshot(f"{root}/one", "second")
    listing = call(server, "GET", f"{root}/one", "GETSNAPSHOTLIST").json()
    assert [item["dirStatus"]["pathSuffix"] for item in listing["SnapshotList"]] == ["first", "second"]
    assert all(item["fullPath"] == f"{root}/one" for item in listing["SnapshotList"])
    assert all(item["deletionStatus"] == "ACTIVE" for item in listing["SnapshotList"])
    parsed = SnapshotInfo.list_from_json(listing)
    assert [s.name for s in parsed] == ["first", "second"] and parsed[0].snapshot_id < parsed[1].snapshot_id

    table = call(server, "GET", "/", "GETSNAPSHOTTABLEDIRECTORYLIST").json()
    dirs = {d.path: d for d in SnapshottableDir.list_from_json(table)}
    assert dirs[f"{root}/one"].snapshot_number == 2 and dirs[f"{root}/one"].snapshot_quota == 65536
    raw = next(i for i in table["SnapshottableDirectoryList"] if i["dirStatus"]["pathSuffix"] == "one")
    assert raw["parentFullPath"] == root
    other_user = requests.get(
        f"{server.url}/webhdfs/v1/", params={"op": "GETSNAPSHOTTABLEDIRECTORYLIST", "user.name": "nobody"}
    ).json()
    assert other_user["SnapshottableDirectoryList"] == []  # only the superuser sees others' directories


# ----------------------------------------------------------------------------------- diffs

EXPECTED = [
    ("MODIFY", "", None),
    ("DELETE", "c", None),
    ("RENAME", "d", "e"),
    ("CREATE", "top.txt", None),
    ("DELETE", "top.txt", None),
    ("CREATE", "newdir", None),
    ("CREATE", "in.txt", None),
    ("MODIFY", "a", None),
    ("CREATE", "a/new.txt", None),
    ("DELETE", "a/f2", None),
    ("MODIFY", "a/f1", None),
    ("MODIFY", "b", None),
    ("RENAME", "b/g1", "a/g1-moved"),
    ("MODIFY", "d", None),  # beneath a renamed directory: the path before the rename
    ("CREATE", "d/k3", None),
    ("MODIFY", "d/k1", None),
    ("MODIFY", "keep.txt", None),
]


def change_tree(client: InsecureClient, root: str, outside: str) -> None:
    client.write(f"{root}/a/new.txt", data=b"new")
    client.write(f"{root}/a/f1", data=b"+", append=True)
    client.delete(f"{root}/c", recursive=True)
    client.rename(f"{root}/d", f"{root}/e")
    client.write(f"{root}/e/k1", data=b"+", append=True)
    client.write(f"{root}/e/k3", data=b"k3")
    client.rename(f"{root}/b/g1", f"{root}/a/g1-moved")
    client.write(f"{root}/top.txt", data=b"replaced", overwrite=True)
    client.write(f"{root}/newdir/sub/deep.txt", data=b"deep")
    client.set_permission(f"{root}/keep.txt", "600")
    client.makedirs(outside)
    client.rename(f"{root}/a/f2", f"{outside}/f2")
    client.write(f"{outside}/in.txt", data=b"in")
    client.rename(f"{outside}/in.txt", f"{root}/in.txt")
    client.set_times(f"{root}/a/new.txt", access_time=5, modification_time=5)  # times alone: not a change


def test_diff_reports_what_hdfs_reports(server: WebHdfsServer, client: InsecureClient, root: str) -> None:
    build_tree(client, root)
    client.allow_snapshot(root)
    client.create_snapshot(root, "s1")
    change_tree(client, root, f"{root}-outside")

    current = diff(server, root, "s1", ".")
    assert entries(current) == sorted(EXPECTED)
    assert (current["snapshotRoot"], current["fromSnapshot"], current["toSnapshot"]) == (root, "s1", "")
    assert entries(diff(server, root, "s1", None)) == sorted(EXPECTED)  # absent: the current state
    assert entries(diff(server, root, "s1", "")) == sorted(EXPECTED)

    client.create_snapshot(root, "s2")
    between = diff(server, root, "s1", "s2")
    assert entries(between) == sorted(EXPECTED) and between["toSnapshot"] == "s2"
    assert diff(server, root, "s2", ".")["diffList"] == []
    assert diff(server, root, "s1", "s1")["diffList"] == []

    backwards = entries(diff(server, root, "s2", "s1"))
    swap = {"CREATE": "DELETE", "DELETE": "CREATE", "MODIFY": "MODIFY"}
    inverted = sorted(("RENAME", t, s) if kind == "RENAME" else (swap[kind], s, t) for kind, s, t in EXPECTED)
    assert backwards == inverted

    between_json = call(
        server, "GET", root, "GETSNAPSHOTDIFF", oldsnapshotname="s1", snapshotname="s2"
    ).json()
    report = SnapshotDiffReport.from_json(between_json)
    renames = {(e.source, e.target) for e in report.entries if e.type is DiffType.RENAME}
    assert renames == {("d", "e"), ("b/g1", "a/g1-moved")}
    position = {(e["type"], e["sourcePath"]): i for i, e in enumerate(between["diffList"])}
    assert position[("MODIFY", "a")] < position[("CREATE", "a/new.txt")]  # a directory before its children


def test_diff_rename_chains_and_swaps(server: WebHdfsServer, client: InsecureClient, root: str) -> None:
    for name in ("a", "b", "chain", "dir/f"):
        client.write(f"{root}/{name}", data=name.encode())
    client.allow_snapshot(root)
    client.create_snapshot(root, "s1")
    client.rename(f"{root}/a", f"{root}/tmp")  # swap a and b through a temporary name
    client.rename(f"{root}/b", f"{root}/a")
    client.rename(f"{root}/tmp", f"{root}/b")
    client.rename(f"{root}/chain", f"{root}/chain2")
    client.rename(f"{root}/chain2", f"{root}/chain3")
    client.write(f"{root}/born", data=b"new")
    client.rename(f"{root}/born", f"{root}/dir/moved")  # created then renamed: a create at the end
    client.delete(f"{root}/dir/f")
    client.write(f"{root}/dir/f", data=b"again")  # deleted then recreated: a new inode
    assert entries(diff(server, root, "s1", ".")) == sorted(
        [
            ("MODIFY", "", None),
            ("RENAME", "a", "b"),
            ("RENAME", "b", "a"),
            ("RENAME", "chain", "chain3"),
            ("MODIFY", "dir", None),
            ("CREATE", "dir/moved", None),
            ("CREATE", "dir/f", None),
            ("DELETE", "dir/f", None),
        ]
    )


def test_diff_listing_carries_the_same_report(
    server: WebHdfsServer, client: InsecureClient, root: str
) -> None:
    build_tree(client, root)
    client.allow_snapshot(root)
    client.create_snapshot(root, "s1")
    change_tree(client, root, f"{root}-elsewhere")
    params = {
        "oldsnapshotname": "s1",
        "snapshotname": "",
        "snapshotdiffstartpath": "",
        "snapshotdiffindex": "-1",
    }
    listing = call(server, "GET", root, "GETSNAPSHOTDIFFLISTING", **params).json()[
        "SnapshotDiffReportListing"
    ]
    assert (listing["lastPath"], listing["lastIndex"], listing["isFromEarlier"]) == ("", -1, True)
    rebuilt = [("MODIFY", e["sourcePath"], None) for e in listing["modifyList"]]
    rebuilt += [("CREATE", e["sourcePath"], None) for e in listing["createList"] if not e["isReference"]]
    for entry in listing["deleteList"]:
        if entry["isReference"]:
            rebuilt.append(("RENAME", entry["sourcePath"], entry["targetPath"]))
        else:
            rebuilt.append(("DELETE", entry["sourcePath"], None))
    assert sorted(rebuilt) == sorted(EXPECTED)
    status = client.status(f"{root}/a")
    modified_a = next(e for e in listing["modifyList"] if e["sourcePath"] == "a")
    assert modified_a["dirId"] == modified_a["fileId"] == status["fileId"]
    created = next(e for e in listing["createList"] if e["sourcePath"] == "a/new.txt")
    assert (
        created["dirId"] == status["fileId"]
        and created["fileId"] == client.status(f"{root}/a/new.txt")["fileId"]
    )
    backwards = call(
        server, "GET", root, "GETSNAPSHOTDIFFLISTING", oldsnapshotname=".", snapshotname="s1"
    ).json()
    assert backwards["SnapshotDiffReportListing"]["isFromEarlier"] is False


def test_diff_of_a_descendant_is_relative_to_it(
    server: WebHdfsServer, client: InsecureClient, root: str
) -> None:
    build_tree(client, root)
    client.allow_snapshot(root)
    client.create_snapshot(root, "s1")
    client.write(f"{root}/a/new.txt", data=b"n")
    client.rename(f"{root}/b/g1", f"{root}/a/g1")  # from outside the scope: a create inside it
    client.rename(f"{root}/a/f2", f"{root}/a/f2-renamed")
    client.write(f"{root}/d/k1", data=b"x", append=True)  # outside the scope: not reported
    report = diff(server, f"{root}/a", "s1", ".")
    assert report["snapshotRoot"] == root
    assert entries(report) == sorted(
        [
            ("MODIFY", "", None),
            ("CREATE", "new.txt", None),
            ("CREATE", "g1", None),
            ("RENAME", "f2", "f2-renamed"),
        ]
    )


def test_diff_errors(server: WebHdfsServer, client: InsecureClient, root: str) -> None:
    client.makedirs(f"{root}/plain")
    client.allow_snapshot(f"{root}/plain")
    client.create_snapshot(f"{root}/plain", "s1")
    unknown = call(server, "GET", f"{root}/plain", "GETSNAPSHOTDIFF", oldsnapshotname="zz", snapshotname="s1")
    assert unknown.status_code == 403 and exception(unknown) == "SnapshotException"
    not_snapshottable = call(server, "GET", root, "GETSNAPSHOTDIFF", oldsnapshotname="s1", snapshotname=".")
    assert not_snapshottable.status_code == 403 and exception(not_snapshottable) == "SnapshotException"


def test_deleting_a_snapshot_frees_only_its_bytes(
    server: WebHdfsServer, client: InsecureClient, root: str
) -> None:
    marker = uuid.uuid4().bytes * 100

    def stored() -> int:
        blobs = Path(server.root, "blobs")
        return sum(1 for p in blobs.rglob("*") if p.is_file() and p.read_bytes().startswith(marker))

    client.write(f"{root}/held", data=marker)
    client.allow_snapshot(root)
    client.create_snapshot(root, "s1")
    client.create_snapshot(root, "s2")
    client.delete(f"{root}/held")
    assert stored() == 1  # still held by the snapshots
    client.delete_snapshot(root, "s1")
    assert stored() == 1
    client.delete_snapshot(root, "s2")
    assert stored() == 0


# --------------------------------------------------------------------------------- restarts


def test_restart_keeps_files_metadata_and_snapshots(tmp_path: Path) -> None:
    home = tmp_path / "root"
    with WebHdfsServer(home, superuser="hdfs") as first:
        client = InsecureClient(first.url, user="alice")
        client.write("/data/x.bin", data=b"x" * 1000)
        client.write("/data/y.txt", data=b"why")
        client.set_owner("/data/x.bin", owner="bob", group="finance")
        client.set_permission("/data/x.bin", "640")
        client.set_acl("/data", "user::rwx,user:carla:r-x,group::r-x,other::---")
        requests.put(f"{first.url}/webhdfs/v1/data", params={"op": "SETQUOTA", "namespacequota": "50"})
        client.allow_snapshot("/data")
        client.create_snapshot("/data", "s1")
        client.write("/data/y.txt", data=b"!", append=True)
        before = {path: fingerprint(client, path) for path in ("/data", "/data/.snapshot/s1")}
        before_diff = diff(first, "/data", "s1", ".")
        old_port = first.port
        max_id = max(s["fileId"] for s in before["/data"].values() if isinstance(s, dict) and "fileId" in s)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{old_port}/webhdfs/v1/?op=GETFILESTATUS", timeout=2)

    with WebHdfsServer(home, superuser="hdfs") as second:
        client = InsecureClient(second.url, user="alice")
        assert {path: fingerprint(client, path) for path in before} == before
        assert diff(second, "/data", "s1", ".") == before_diff
        quota = requests.get(f"{second.url}/webhdfs/v1/data", params={"op": "GETQUOTAUSAGE"}).json()
        assert quota["QuotaUsage"]["quota"] == 50
        client.write("/data/z", data=b"z")
        assert client.status("/data/z")["fileId"] > max_id  # ids are never reused
        assert client.status("/data")["snapshotEnabled"] is True
        json.dumps(client.status("/data/.snapshot/s1"))
