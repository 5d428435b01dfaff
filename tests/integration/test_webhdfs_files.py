"""The embedded WebHDFS server driven by clients not written for it: HdfsCLI (`hdfs`), fsspec,
Airflow's WebHDFSHook and WebHdfsSensor, and raw HTTP per WebHDFS.md where no client goes."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hdfs import HdfsError, InsecureClient

from tandem_dev.embedded.webhdfs import WebHdfsServer

pytestmark = pytest.mark.integration

FILE_KEYS = {
    "accessTime", "blockSize", "childrenNum", "fileId", "group", "length", "modificationTime", "owner",
    "pathSuffix", "permission", "replication", "storagePolicy", "type",
}  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHdfsServer]:
    with WebHdfsServer(tmp_path_factory.mktemp("webhdfs") / "root", superuser="hdfs") as srv:
        yield srv


@pytest.fixture
def client(server: WebHdfsServer) -> InsecureClient:
    return InsecureClient(server.url, user="alice")


@pytest.fixture
def base(client: InsecureClient) -> str:
    """A fresh directory per test, so tests share the module's server without interfering."""
    path = f"/t/{uuid.uuid4().hex[:12]}"
    client.makedirs(path)
    return path


def url(server: WebHdfsServer, path: str, op: str, **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"op": op, "user.name": "alice", **params}.items())
    return f"{server.url}/webhdfs/v1{path}?{query}"


def raw(server: WebHdfsServer, method: str, target: str, port: int | None = None) -> tuple[int, bytes]:
    """Send a request target byte for byte (requests would normalise `..` away)."""
    conn = http.client.HTTPConnection("127.0.0.1", port or server.port, timeout=10)
    try:
        conn.request(method, target)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def remote(body: bytes | str) -> dict[str, str]:
    payload = json.loads(body)
    assert set(payload) == {"RemoteException"}
    exc: dict[str, str] = payload["RemoteException"]
    assert set(exc) == {"exception", "javaClassName", "message"}
    return exc


# ------------------------------------------------------------------------------ HdfsCLI client


def test_write_read_status_list(client: InsecureClient, base: str) -> None:
    client.write(f"{base}/b.txt", data=b"bravo")
    client.write(f"{base}/a.txt", data=b"alpha!")
    client.makedirs(f"{base}/sub")
    with client.read(f"{base}/a.txt") as reader:
        assert reader.read() == b"alpha!"

    status = client.status(f"{base}/a.txt")
    assert set(status) == FILE_KEYS
    assert status["pathSuffix"] == "" and status["type"] == "FILE" and status["length"] == 6
    assert (status["owner"], status["group"], status["permission"]) == ("alice", "supergroup", "644")
    assert status["replication"] == 1 and status["blockSize"] == 128 * 1024 * 1024
    assert status["accessTime"] == status["modificationTime"] > 0

    listing = client.list(base, status=True)
    assert [name for name, _ in listing] == ["a.txt", "b.txt", "sub"]
    sub = dict(listing)["sub"]
    assert sub["type"] == "DIRECTORY" and sub["permission"] == "755" and sub["length"] == 0
    assert sub["replication"] == 0 and sub["blockSize"] == 0 and sub["childrenNum"] == 0
    assert client.status(base)["childrenNum"] == 3
    with pytest.raises(HdfsError, match="not a directory"):
        client.list(f"{base}/a.txt")
    assert client.status(f"{base}/missing", strict=False) is None


def test_root_and_home(server: WebHdfsServer, client: InsecureClient) -> None:
    root = client.status("/")
    assert root["fileId"] == 16385 and root["owner"] == "hdfs" and root["type"] == "DIRECTORY"
    home = requests.get(url(server, "/", "GETHOMEDIRECTORY")).json()
    assert home == {"Path": "/user/alice"}


def test_file_ids_are_stable_inode_ids(client: InsecureClient, base: str) -> None:
    client.write(f"{base}/f", data=b"1")
    first = client.status(f"{base}/f")["fileId"]
    client.write(f"{base}/f", data=b"2", append=True)
    client.rename(f"{base}/f", f"{base}/g")
    assert client.status(f"{base}/g")["fileId"] == first
    client.write(f"{base}/g", data=b"new", overwrite=True)  # HDFS: a new inode
    assert client.status(f"{base}/g")["fileId"] > first


def test_append_and_ranged_reads(client: InsecureClient, base: str) -> None:
    client.write(f"{base}/log", data=b"0123456789")
    client.write(f"{base}/log", data=b"abcdef", append=True)
    with client.read(f"{base}/log", offset=8, length=4) as reader:
        assert reader.read() == b"89ab"
    with client.read(f"{base}/log", offset=12) as reader:
        assert reader.read() == b"cdef"
    with (
        pytest.raises(HdfsError, match=r"Offset=16 out of the range \[0, 16\)"),
        client.read(f"{base}/log", offset=16),
    ):
        pass  # at the end: the NameNode refuses, as chooseDatanode does
    assert client.status(f"{base}/log")["length"] == 16


def test_delete(client: InsecureClient, base: str) -> None:
    client.write(f"{base}/d/x", data=b"x")
    with pytest.raises(HdfsError) as excinfo:
        client.delete(f"{base}/d")
    assert excinfo.value.exception == "PathIsNotEmptyDirectoryException"
    assert client.delete(f"{base}/nothing") is False
    assert client.delete(f"{base}/d", recursive=True) is True
    assert client.status(f"{base}/d", strict=False) is None
    assert client.delete("/") is False


def test_rename(client: InsecureClient, base: str) -> None:
    client.write(f"{base}/f", data=b"f")
    client.write(f"{base}/other", data=b"o")
    client.makedirs(f"{base}/dir")
    client.rename(f"{base}/f", f"{base}/dir")  # into an existing directory, as HDFS does
    assert client.list(f"{base}/dir") == ["f"]
    with pytest.raises(HdfsError, match="Unable to rename"):
        client.rename(f"{base}/other", f"{base}/dir/f")  # destination exists
    with pytest.raises(HdfsError, match="Unable to rename"):
        client.rename(f"{base}/missing", f"{base}/x")
    with pytest.raises(HdfsError, match="Unable to rename"):
        client.rename(f"{base}/other", f"{base}/no/such/parent")
    with pytest.raises(HdfsError) as excinfo:
        client.rename(f"{base}/dir", f"{base}/dir/inside")
    assert excinfo.value.exception == "IOException"


def test_rename_with_overwrite_option(server: WebHdfsServer, client: InsecureClient, base: str) -> None:
    client.write(f"{base}/a", data=b"aaa")
    client.write(f"{base}/b", data=b"b")
    target = f"destination={base}/b"
    response = requests.put(url(server, f"{base}/a", "RENAME", renameoptions="NONE") + "&" + target)
    assert (
        response.status_code == 403 and remote(response.content)["exception"] == "FileAlreadyExistsException"
    )
    response = requests.put(url(server, f"{base}/a", "RENAME", renameoptions="OVERWRITE") + "&" + target)
    assert response.status_code == 200
    with client.read(f"{base}/b") as reader:
        assert reader.read() == b"aaa"


def test_attributes(client: InsecureClient, base: str) -> None:
    client.makedirs(f"{base}/p", permission="700")
    assert client.status(f"{base}/p")["permission"] == "700"
    client.write(f"{base}/p/f", data=b"data", permission="600", replication=3)
    client.set_owner(f"{base}/p/f", owner="bob", group="staff")
    client.set_permission(f"{base}/p/f", "1640")
    client.set_times(f"{base}/p/f", access_time=1000, modification_time=2000)
    status = client.status(f"{base}/p/f")
    assert (status["owner"], status["group"], status["permission"]) == ("bob", "staff", "1640")
    assert (status["accessTime"], status["modificationTime"], status["replication"]) == (1000, 2000, 3)
    client.set_replication(f"{base}/p/f", 2)
    assert client.status(f"{base}/p/f")["replication"] == 2
    with pytest.raises(HdfsError):
        client.set_replication(f"{base}/p", 2)  # HDFS answers false for a directory
    client.set_owner(f"{base}/p", group="staff")
    client.write(f"{base}/p/child", data=b"")
    assert client.status(f"{base}/p/child")["group"] == "staff"  # HDFS: the parent's group


def test_content_summary(client: InsecureClient, base: str) -> None:
    client.write(f"{base}/a/1", data=b"x" * 10, replication=2)
    client.write(f"{base}/a/b/2", data=b"y" * 5)
    summary = client.content(f"{base}/a")
    assert summary["directoryCount"] == 2 and summary["fileCount"] == 2
    assert summary["length"] == 15 and summary["spaceConsumed"] == 25
    assert summary["quota"] == -1 and summary["spaceQuota"] == -1
    assert client.content(f"{base}/a/1")["fileCount"] == 1


# ----------------------------------------------------------------------------- the raw protocol


def test_create_is_two_steps(server: WebHdfsServer, base: str) -> None:
    step1 = requests.put(url(server, f"{base}/f", "CREATE", overwrite="true"), allow_redirects=False)
    assert step1.status_code == 307 and step1.content == b""
    location = step1.headers["Location"]
    assert location.startswith(f"http://127.0.0.1:{server.data_port}/webhdfs/v1{base}/f?op=CREATE")
    assert "user.name=alice" in location and "overwrite=true" in location
    assert requests.get(url(server, f"{base}/f", "GETFILESTATUS")).status_code == 404  # nothing yet

    step2 = requests.put(location, data=b"payload")
    assert step2.status_code == 201 and step2.content == b""
    assert step2.headers["Location"] == f"webhdfs://127.0.0.1:{server.port}{base}/f"
    assert requests.get(url(server, f"{base}/f", "GETFILESTATUS")).json()["FileStatus"]["length"] == 7


def test_noredirect_answers_the_location(server: WebHdfsServer, base: str) -> None:
    created = requests.put(url(server, f"{base}/f", "CREATE", noredirect="true"), allow_redirects=False)
    assert created.status_code == 200 and set(created.json()) == {"Location"}
    assert requests.put(created.json()["Location"], data=b"abc").status_code == 201

    opened = requests.get(url(server, f"{base}/f", "OPEN", noredirect="true"), allow_redirects=False)
    assert opened.status_code == 200
    data = requests.get(opened.json()["Location"])
    assert data.content == b"abc" and data.headers["Content-Type"] == "application/octet-stream"

    appended = requests.post(url(server, f"{base}/f", "APPEND"), allow_redirects=False)
    assert appended.status_code == 307
    response = requests.post(appended.headers["Location"], data=b"def")
    assert response.status_code == 200 and response.content == b""
    opened = requests.get(url(server, f"{base}/f", "OPEN"), allow_redirects=False)
    assert opened.status_code == 307
    assert requests.get(opened.headers["Location"]).content == b"abcdef"
    checksum = requests.get(url(server, f"{base}/f", "GETFILECHECKSUM"), allow_redirects=False)
    assert checksum.status_code == 307 and f":{server.data_port}/" in checksum.headers["Location"]


def test_chunked_and_sized_uploads_store_the_same_bytes(server: WebHdfsServer, base: str) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    pieces = [payload[i : i + 100_000] for i in range(0, len(payload), 100_000)]
    for name, body in (("chunked", iter(pieces)), ("sized", payload)):
        step1 = requests.put(url(server, f"{base}/{name}", "CREATE"), allow_redirects=False)
        assert requests.put(step1.headers["Location"], data=body).status_code == 201
    for name in ("chunked", "sized"):
        assert requests.get(url(server, f"{base}/{name}", "OPEN")).content == payload


def test_keep_alive(server: WebHdfsServer, base: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("PUT", f"/webhdfs/v1{base}/k?op=MKDIRS&user.name=alice")
        first = conn.getresponse()
        assert first.status == 200 and json.loads(first.read()) == {"boolean": True}
        sock = conn.sock
        for _ in range(3):
            conn.request("GET", f"/webhdfs/v1{base}/missing?op=GETFILESTATUS")  # errors keep it too
            response = conn.getresponse()
            assert response.status == 404
            response.read()
        conn.request("GET", f"/webhdfs/v1{base}/k?op=GETFILESTATUS")
        assert conn.getresponse().status == 200
        assert conn.sock is sock and sock is not None
    finally:
        conn.close()


def test_bare_tcp_probe_does_not_disturb(server: WebHdfsServer, client: InsecureClient) -> None:
    # WebHDFSHook probes each NameNode with connect_ex and closes without a request.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        pass
    assert client.status("/")["type"] == "DIRECTORY"


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("method", "op", "status", "exception"),
    [
        ("GET", "NOSUCHOP", 400, "IllegalArgumentException"),
        ("GET", "MKDIRS", 400, "IllegalArgumentException"),  # a PUT op sent with GET
        ("GET", "GETECPOLICY", 400, "UnsupportedOperationException"),
        ("GET", "", 400, "IllegalArgumentException"),
    ],
)
def test_bad_operations(server: WebHdfsServer, method: str, op: str, status: int, exception: str) -> None:
    response = requests.request(method, url(server, "/", op))
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert remote(response.content)["exception"] == exception


def test_error_codes_follow_hadoop(server: WebHdfsServer, client: InsecureClient, base: str) -> None:
    client.write(f"{base}/file", data=b"0123456789")
    missing = requests.get(url(server, f"{base}/nope", "GETFILESTATUS"))
    assert missing.status_code == 404
    assert remote(missing.content) == {
        "exception": "FileNotFoundException",
        "javaClassName": "java.io.FileNotFoundException",
        "message": f"File does not exist: {base}/nope",
    }
    exists = requests.put(
        requests.put(url(server, f"{base}/file", "CREATE"), allow_redirects=False).headers["Location"]
    )
    assert exists.status_code == 403 and remote(exists.content)["exception"] == "FileAlreadyExistsException"
    under_file = requests.put(url(server, f"{base}/file/sub", "MKDIRS"))
    assert under_file.status_code == 403
    assert remote(under_file.content)["javaClassName"] == "org.apache.hadoop.fs.ParentNotDirectoryException"
    for op, extra in (
        ("MKDIRS", {"permission": "999"}),
        ("OPEN", {"offset": "-1"}),
        ("DELETE", {"recursive": "x"}),
    ):
        method = "DELETE" if op == "DELETE" else ("GET" if op == "OPEN" else "PUT")
        bad = requests.request(method, url(server, f"{base}/file", op, **extra))
        assert bad.status_code == 400 and remote(bad.content)["exception"] == "IllegalArgumentException", op
    on_dir = requests.get(url(server, base, "OPEN"))
    assert on_dir.status_code == 404
    past_end = requests.get(url(server, f"{base}/file", "OPEN", offset="11"))
    assert past_end.status_code == 403 and remote(past_end.content)["exception"] == "IOException"
    reserved = requests.put(url(server, f"{base}/.snapshot", "MKDIRS"))
    assert reserved.status_code == 400
    assert remote(reserved.content)["exception"] == "HadoopIllegalArgumentException"
    no_owner = requests.put(url(server, f"{base}/file", "SETOWNER"))
    assert no_owner.status_code == 400


def test_write_errors_reach_hdfs_client(client: InsecureClient, base: str) -> None:
    client.write(f"{base}/f", data=b"x")
    with pytest.raises(HdfsError) as excinfo:
        client.write(f"{base}/f", data=b"y")
    assert excinfo.value.exception == "FileAlreadyExistsException"
    with pytest.raises(HdfsError) as excinfo:
        client.write(f"{base}/none", data=b"y", append=True)
    assert excinfo.value.exception == "FileNotFoundException"
    with pytest.raises(HdfsError) as excinfo:
        client.write(f"{base}/small-blocks", data=b"y", blocksize=1000)
    assert excinfo.value.exception == "IOException"


@pytest.mark.parametrize(
    "target",
    [
        "/webhdfs/v1/{base}/../escape",
        "/webhdfs/v1/..",
        "/webhdfs/v1/{base}/%2e%2e/escape",
        "/webhdfs/v1/{base}/%2E%2E",
        "/webhdfs/v1/{base}/a%2Fb",
        "/webhdfs/v1/{base}/a%2f..%2f..%2fetc",
        "/webhdfs/v1/{base}/nul%00byte",
        "/webhdfs/v1/{base}/./dot",
        "/webhdfs/v1/{base}/bad%ff",
        "/webhdfs/v1/{base}/colon:name",
    ],
)
def test_path_escapes_are_refused(server: WebHdfsServer, base: str, target: str) -> None:
    target = target.replace("/{base}", base)
    for method, op in (("PUT", "MKDIRS"), ("GET", "GETFILESTATUS"), ("PUT", "CREATE")):
        status, body = raw(server, method, f"{target}?op={op}&user.name=alice")
        assert status == 400, (method, target)
        assert remote(body)["exception"] == "InvalidPathException"
    status, _ = raw(server, "PUT", f"/webhdfs/v1{base}/x?op=CREATE&user.name=alice", port=server.data_port)
    assert status == 201  # the data port itself is fine with ordinary names
    status, body = raw(server, "PUT", f"{target}?op=CREATE&user.name=alice", port=server.data_port)
    assert status == 400
    rename = requests.put(url(server, f"{base}/x", "RENAME", destination=f"{base}/../../escaped"))
    assert rename.status_code == 400
    assert not any(p.name == "escape" for p in server.root.parent.rglob("escape*"))


def test_hdfs_paths_never_reach_local_paths(server: WebHdfsServer, client: InsecureClient, base: str) -> None:
    secret = server.root.parent / "secret.txt"
    secret.write_bytes(b"top secret")
    client.write(f"{base}/victim", data=b"innocent")
    blobs = [p for p in (server.root / "blobs").rglob("*") if p.is_file() and p.read_bytes() == b"innocent"]
    assert len(blobs) == 1
    blobs[0].unlink()
    blobs[0].symlink_to(secret)  # someone plants a symlink in the store: it is refused, not followed
    response = requests.get(url(server, f"{base}/victim", "OPEN"))
    assert response.status_code >= 400 and b"top secret" not in response.content
    assert not list(server.root.rglob("victim"))


# --------------------------------------------------------------------- large files, bounded memory


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_large_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tandem_dev.embedded.webhdfs", "--root", str(tmp_path / "root")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        client = InsecureClient(info["url"], user="alice")
        client.write("/warmup", data=b"w" * 1024)
        with client.read("/warmup") as reader:
            reader.read()
        before = _peak_rss_kib(process.pid)
        size, chunk = 64 * 1024 * 1024, 1024 * 1024
        digest = hashlib.sha256()

        def chunks() -> Iterator[bytes]:
            for i in range(size // chunk):
                block = hashlib.sha256(str(i).encode()).digest() * (chunk // 32)
                digest.update(block)
                yield block

        client.write("/big", data=chunks())
        got = hashlib.sha256()
        with client.read("/big", chunk_size=chunk) as reader:
            for block in reader:
                got.update(block)
        assert got.hexdigest() == digest.hexdigest()
        assert client.status("/big")["length"] == size
        grew_mib = (_peak_rss_kib(process.pid) - before) / 1024
        assert grew_mib < 24, f"server memory grew by {grew_mib:.0f} MiB for a 64 MiB file"
    finally:
        process.terminate()
        process.wait(10)


# ----------------------------------------------------------------------------------- fsspec


def test_fsspec_webhdfs(server: WebHdfsServer, base: str) -> None:
    from fsspec.implementations.webhdfs import WebHDFS

    fs = WebHDFS("127.0.0.1", port=server.port, user="carol")
    fs.mkdir(f"{base}/fs")
    payload = os.urandom(12 * 1024 * 1024)  # more than one 5 MiB block: CREATE then several APPENDs
    with fs.open(f"{base}/fs/blob", "wb") as handle:
        handle.write(payload)
    assert fs.cat(f"{base}/fs/blob") == payload
    with fs.open(f"{base}/fs/blob", "rb") as handle:
        handle.seek(5_000_000)
        assert handle.read(10) == payload[5_000_000:5_000_010]
    info = fs.info(f"{base}/fs/blob")
    assert info["size"] == len(payload) and info["type"] == "file" and info["owner"] == "carol"
    assert fs.ls(f"{base}/fs") == [f"{base}/fs/blob"]
    assert fs.ukey(f"{base}/fs/blob")["algorithm"] == "MD5-of-0MD5-of-512CRC32"
    fs.mv(f"{base}/fs/blob", f"{base}/fs/moved")
    assert fs.exists(f"{base}/fs/moved") and not fs.exists(f"{base}/fs/blob")
    with pytest.raises(FileNotFoundError):
        fs.info(f"{base}/fs/blob")
    fs.rm(f"{base}/fs", recursive=True)
    assert not fs.exists(f"{base}/fs")


# ----------------------------------------------------------------------------------- Airflow


@pytest.fixture
def airflow_conn(server: WebHdfsServer, monkeypatch: pytest.MonkeyPatch) -> str:
    conn_id = "webhdfs_embedded_test"
    conn = {"conn_type": "webhdfs", "host": "127.0.0.1", "port": server.port, "login": "root"}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def test_airflow_hook_and_sensor(
    airflow_conn: str, client: InsecureClient, base: str, tmp_path: Path
) -> None:
    from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook
    from airflow.providers.apache.hdfs.sensors.web_hdfs import WebHdfsSensor

    hook = WebHDFSHook(webhdfs_conn_id=airflow_conn)
    local = tmp_path / "upload.csv"
    local.write_bytes(b"id,amount\n1,10\n")
    hook.load_file(str(local), f"{base}/in/upload.csv")
    assert hook.check_for_path(f"{base}/in/upload.csv")
    assert not hook.check_for_path(f"{base}/in/none.csv")
    assert hook.read_file(f"{base}/in/upload.csv") == b"id,amount\n1,10\n"
    assert client.status(f"{base}/in/upload.csv")["owner"] == "root"

    sensor = WebHdfsSensor(task_id="wait", filepath=f"{base}/in/upload.csv", webhdfs_conn_id=airflow_conn)
    assert sensor.poke(context={}) is True
    sensor = WebHdfsSensor(task_id="wait2", filepath=f"{base}/in/later.csv", webhdfs_conn_id=airflow_conn)
    assert sensor.poke(context={}) is False


def test_settimes_sets_a_directorys_access_time_too(client: InsecureClient, base: str) -> None:
    client.makedirs(f"{base}/timed")
    client.set_times(f"{base}/timed", access_time=1000, modification_time=2000)
    status = client.status(f"{base}/timed")
    assert (status["accessTime"], status["modificationTime"]) == (1000, 2000)


# ------------------------------------------ answers checked against NamenodeWebHdfsMethods


def test_open_at_or_past_the_end_is_refused_by_the_namenode_before_any_redirect(
    server: WebHdfsServer, client: InsecureClient, base: str
) -> None:
    """chooseDatanode: ``openOffset >= len && len > 0`` is an IOException (403) from the NameNode,
    with or without ``noredirect``; an empty file opens at 0."""
    client.write(f"{base}/f", b"hello world")
    client.write(f"{base}/empty", b"")
    for params in ({"offset": "11"}, {"offset": "12", "noredirect": "true"}):
        answer = requests.get(url(server, f"{base}/f", "OPEN", **params), allow_redirects=False, timeout=10)
        assert answer.status_code == 403, (answer.status_code, answer.content)
        said = remote(answer.content)
        assert said["exception"] == "IOException" and said["message"].startswith("Offset=")
    assert requests.get(url(server, f"{base}/empty", "OPEN", offset="0"), timeout=10).content == b""


def test_setpermission_without_a_permission_sets_755_on_a_file_too(
    server: WebHdfsServer, client: InsecureClient, base: str
) -> None:
    """``cp.setPermission(fullpath, permission.getDirFsPermission())``: the parameter's default."""
    client.write(f"{base}/f", b"x", permission="600")
    assert requests.put(url(server, f"{base}/f", "SETPERMISSION"), timeout=10).status_code == 200
    assert client.status(f"{base}/f")["permission"] == "755"


def test_a_delegation_token_without_security_is_null(server: WebHdfsServer) -> None:
    """An insecure NameNode has no credentials to issue a token from: 200 ``{"Token": null}``."""
    answer = requests.get(url(server, "/", "GETDELEGATIONTOKEN"), timeout=10)
    assert answer.status_code == 200 and answer.json() == {"Token": None}
