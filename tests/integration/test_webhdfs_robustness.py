"""The embedded WebHDFS server under stress: concurrent writers, HDFS leases, a server killed in
the middle of a write, ports already taken, long listings."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from hdfs import HdfsError, InsecureClient

from tandem.errors import EmbeddedError
from tandem_dev.embedded.webhdfs import WebHdfsServer

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebHdfsServer]:
    with WebHdfsServer(tmp_path / "root") as srv:
        yield srv


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class Gate:
    """A request body that sends one chunk, then waits until released."""

    def __init__(self, first: bytes, rest: bytes = b"") -> None:
        self.first, self.rest = first, rest
        self.sent = threading.Event()
        self.release = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        yield self.first
        self.sent.set()
        self.release.wait(30)
        if self.rest:
            yield self.rest


def test_concurrent_writers(server: WebHdfsServer) -> None:
    def work(worker: int) -> None:
        client = InsecureClient(server.url, user=f"user{worker}")
        for i in range(15):
            client.write(f"/par/w{worker}/f{i}", data=f"{worker}:{i}".encode() * 100)
            client.write(f"/par/shared-{worker}-{i}", data=b"s")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    client = InsecureClient(server.url, user="check")
    assert len(client.list("/par")) == 8 + 8 * 15
    for worker in range(8):
        with client.read(f"/par/w{worker}/f7") as reader:
            assert reader.read() == f"{worker}:7".encode() * 100
    ids = {client.status(f"/par/w{w}/f{i}")["fileId"] for w in range(8) for i in range(15)}
    assert len(ids) == 120


def test_one_writer_per_file(server: WebHdfsServer) -> None:
    client = InsecureClient(server.url, user="alice")
    client.write("/lease/f", data=b"base")
    gate = Gate(b"-first")
    first = threading.Thread(target=client.write, args=("/lease/f",), kwargs={"data": gate, "append": True})
    first.start()
    try:
        assert gate.sent.wait(10)
        wait_for(lambda: server.namespace.open_files() == 1)  # the datanode has taken the lease
        with pytest.raises(HdfsError) as excinfo:
            InsecureClient(server.url, user="bob").write("/lease/f", data=b"-second", append=True)
        assert excinfo.value.exception == "AlreadyBeingCreatedException"
        with pytest.raises(HdfsError) as excinfo:
            InsecureClient(server.url, user="bob").write("/lease/f", data=b"x", overwrite=True)
        assert excinfo.value.exception == "AlreadyBeingCreatedException"
        truncate = requests.post(
            f"{server.url}/webhdfs/v1/lease/f", params={"op": "TRUNCATE", "newlength": "1"}
        )
        assert truncate.status_code == 403
        with client.read("/lease/f") as reader:
            assert reader.read() == b"base"  # the append in flight is not visible yet
    finally:
        gate.release.set()
        first.join(10)
    with client.read("/lease/f") as reader:
        assert reader.read() == b"base-first"
    client.write("/lease/f", data=b"-third", append=True)  # the lease is free again


def test_a_dropped_upload_leaves_nothing(server: WebHdfsServer) -> None:
    client = InsecureClient(server.url, user="alice")
    client.write("/drop/kept", data=b"kept")
    step1 = requests.put(f"{server.url}/webhdfs/v1/drop/new?op=CREATE&user.name=alice", allow_redirects=False)
    step2 = requests.post(
        f"{server.url}/webhdfs/v1/drop/kept?op=APPEND&user.name=alice", allow_redirects=False
    )
    for location, method in ((step1.headers["Location"], "PUT"), (step2.headers["Location"], "POST")):
        target = location.split(str(server.data_port), 1)[1]
        with socket.create_connection(("127.0.0.1", server.data_port)) as sock:
            head = f"{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {10 * MIB}\r\n\r\n"
            sock.sendall(head.encode() + b"z" * MIB)  # then the client vanishes
    wait_for(lambda: not list((server.root / "tmp").iterdir()))
    assert client.status("/drop/new", strict=False) is None
    with client.read("/drop/kept") as reader:
        assert reader.read() == b"kept"
    # the dropped APPEND is aborted by its own thread when its read fails: its lease goes then
    wait_for(lambda: _append(client, "/drop/kept", b"+"))
    with client.read("/drop/kept") as reader:
        assert reader.read() == b"kept+"


def _append(client: InsecureClient, path: str, data: bytes) -> bool:
    """True once appended; False while another writer still holds the file's lease."""
    try:
        client.write(path, data=data, append=True)
    except HdfsError as exc:
        if "lease is currently owned by another client" in str(exc):
            return False
        raise
    return True


def attempt(write: Callable[..., None], path: str, data: Gate, append: bool) -> None:
    """Run a write that is expected to die with the server; its error is not the point."""
    with contextlib.suppress(Exception):
        write(path, data=data, append=append)


def _start(root: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tandem_dev.embedded.webhdfs", "--root", str(root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, str(json.loads(process.stdout.readline())["url"])


@pytest.mark.slow
def test_server_killed_mid_write_recovers(tmp_path: Path) -> None:
    root = tmp_path / "root"
    process, url = _start(root)
    try:
        client = InsecureClient(url, user="alice")
        client.write("/crash/existing", data=b"original")
        client.allow_snapshot("/crash")
        client.create_snapshot("/crash", "before")
        uploads = [
            Gate(os.urandom(2 * MIB), os.urandom(MIB)),
            Gate(b"appended bytes that must vanish" * 1000, b"more"),
        ]
        threads = [
            threading.Thread(
                target=attempt, args=(client.write, "/crash/new", uploads[0], False), daemon=True
            ),
            threading.Thread(
                target=attempt, args=(client.write, "/crash/existing", uploads[1], True), daemon=True
            ),
        ]
        for thread in threads:
            thread.start()
        for gate in uploads:
            assert gate.sent.wait(10)
        wait_for(lambda: any(p.stat().st_size > 0 for p in (root / "tmp").iterdir()))
        process.send_signal(signal.SIGKILL)  # no cleanup of any kind
        process.wait(10)
    finally:
        for gate in uploads:
            gate.release.set()
        if process.poll() is None:
            process.kill()

    process, url = _start(root)
    try:
        client = InsecureClient(url, user="alice")
        assert client.status("/crash/new", strict=False) is None
        with client.read("/crash/existing") as reader:
            assert reader.read() == b"original"
        assert list((root / "tmp").iterdir()) == []
        with client.read("/crash/.snapshot/before/existing") as reader:
            assert reader.read() == b"original"
        client.write("/crash/existing", data=b"+after", append=True)
        with client.read("/crash/existing") as reader:
            assert reader.read() == b"original+after"
        blobs = [p for p in (root / "blobs").rglob("*") if p.is_file()]
        assert len(blobs) == 1  # the crashed upload left no orphan behind
    finally:
        process.terminate()
        process.wait(10)


def test_ports_in_use_are_reported(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EmbeddedError, match=f"127.0.0.1:{port}"):
            WebHdfsServer(tmp_path / "a", port=port).start()
        with pytest.raises(EmbeddedError, match="datanode"):
            WebHdfsServer(tmp_path / "b", data_port=port).start()
    server = WebHdfsServer(tmp_path / "c")
    server.start()
    server.start()  # already running: nothing happens
    with pytest.raises(EmbeddedError, match="already served"):
        WebHdfsServer(tmp_path / "c").start()  # one NameNode per root
    url = server.url
    assert requests.get(f"{url}/webhdfs/v1/?op=GETFILESTATUS").status_code == 200
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/webhdfs/v1/?op=GETFILESTATUS", timeout=2)


def test_stop_with_open_connections(tmp_path: Path) -> None:
    server = WebHdfsServer(tmp_path / "root")
    server.start()
    idle = socket.create_connection(("127.0.0.1", server.port))
    session = requests.Session()
    assert session.get(f"{server.url}/webhdfs/v1/?op=GETFILESTATUS").status_code == 200  # kept alive
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    assert idle.recv(10) == b""
    idle.close()


def test_listing_in_batches(server: WebHdfsServer) -> None:
    namespace = server.namespace  # bulk-load through the model; listing goes over HTTP
    for i in range(1100):
        namespace.mkdirs(("many", f"d{i:04d}"), "alice")
    names: list[str] = []
    start_after = ""
    pages = 0
    while True:
        response = requests.get(
            f"{server.url}/webhdfs/v1/many", params={"op": "LISTSTATUS_BATCH", "startAfter": start_after}
        ).json()["DirectoryListing"]
        batch = [s["pathSuffix"] for s in response["partialListing"]["FileStatuses"]["FileStatus"]]
        names += batch
        pages += 1
        if response["remainingEntries"] == 0:
            break
        assert response["remainingEntries"] == 1100 - len(names)
        start_after = batch[-1]
    assert pages == 2 and names == [f"d{i:04d}" for i in range(1100)]
    full = requests.get(f"{server.url}/webhdfs/v1/many", params={"op": "LISTSTATUS"}).json()
    assert len(full["FileStatuses"]["FileStatus"]) == 1100


def test_server_facts(server: WebHdfsServer) -> None:
    status = requests.get(f"{server.url}/webhdfs/v1/", params={"op": "GETSTATUS"}).json()["FsStatus"]
    assert status["capacity"] >= status["remaining"] > 0
    defaults = requests.get(f"{server.url}/webhdfs/v1/", params={"op": "GETSERVERDEFAULTS"}).json()
    assert defaults["FsServerDefaults"]["bytesPerChecksum"] == 512
    response = requests.get(f"{server.url}/webhdfs/v1/", params={"op": "GETFILESTATUS"})
    assert response.headers["Date"].endswith("GMT")  # preflight reads the cluster clock from here
    assert requests.get(f"{server.url}/not-webhdfs").status_code == 404
