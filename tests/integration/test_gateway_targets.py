"""The write gateway backing up to a NAS directory (``file://``) and to a real S3 server
(``s3://``, SeaweedFS on loopback, reached through a proxy the test can cut), with private data
sealed on the way: what lands on each store is read with the store's own tools (``os``,
botocore), never through the gateway or its drivers; decryption only through ``tandem gateway
decrypt`` as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from hdfs import InsecureClient, TokenClient

from tandem.gateway.crypto import MAGIC, MasterKey
from tandem_dev.embedded.manager import RunningClusters
from tandem_dev.s3 import SeaweedS3
from tests.integration.gateway_support import (
    ROOT,
    TANDEM,
    Gateway,
    GatewayPlan,
    create,
    gateway,
    payload,
    read_or_none,
    replay,
    status,
    superusers,
    write_plan,
)
from tests.integration.test_failover_support import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("gateway_targets")]

KEY = MasterKey.generate()
CHUNK = 4096  # small sealed chunks: every file of a few KiB spans several
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 200
PRIVATE = {
    "word.txt": b"Name: Ana\nPassport number P1234567\n",
    "id.csv": b"id,card\n7,11010519491231002X\n",
    "phone.txt": b"call me on 13812345678 tomorrow",
    "mail.txt": b"write to ana.lopez@example.org please",
    "card.txt": b"paid with 4111-1111-1111-1111 on Monday",
    "photo.bin": PNG,
    "big-salary.txt": b"SALARY report\n" + payload("big", 150_000).hex().encode(),
}
CLEAN = {
    "clean.txt": b"nothing to see: 4111-1111-1111-1112 fails Luhn, 110105194912310021 fails its check",
    "clean.bin": payload("clean.bin", 50_000),
}


@dataclass
class Setup:
    kind: str
    plan: GatewayPlan
    gw: Gateway
    root: str
    store: Any  # Path of the NAS, or (botocore client, bucket, prefix)
    proxy: TcpProxy | None = None

    def key_of(self, path: str) -> str:
        return f"{self.root}{path}"

    def stored(self, path: str) -> bytes | None:
        if self.kind == "file":
            full = self.store / self.key_of(path).lstrip("/")
            return full.read_bytes() if full.exists() else None
        client, bucket, prefix = self.store
        try:
            body: bytes = client.get_object(Bucket=bucket, Key=f"{prefix}{self.key_of(path)}")["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
        return body

    def meta(self, path: str) -> dict[str, str]:
        if self.kind == "file":
            full = self.store / self.key_of(path).lstrip("/")
            return {
                n.removeprefix("user.tandem."): os.getxattr(full, n).decode()
                for n in os.listxattr(full)
                if n.startswith("user.tandem.")
            }
        client, bucket, prefix = self.store
        found = client.head_object(Bucket=bucket, Key=f"{prefix}{self.key_of(path)}")["Metadata"]
        return {k.removeprefix("tandem-"): v for k, v in found.items()}


def _key_env(key: str) -> str:
    return json.dumps({"conn_type": "generic", "password": key})


@pytest.fixture(scope="module", params=["file", "s3"])
def setup(
    request: pytest.FixtureRequest, embedded: RunningClusters, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    kind = request.param
    name = f"gwt{kind}"
    base = tmp_path_factory.mktemp(name)
    private = {
        "words": ["passport", "SALARY"],
        "patterns": ["id_card_cn", "phone_cn", "email", "credit_card"],
        "images": True,
        "key_conn_id": "tandem_gateway_key",
        "chunk": CHUNK,
    }
    proxy = None
    if kind == "file":
        nas = base / "nas"
        nas.mkdir()
        target: dict[str, Any] = {"uri": f"file://{nas}", "root": "/backup"}
        store: Any = nas
    else:
        server: SeaweedS3 = request.getfixturevalue("s3_server")
        bucket = server.make_bucket(f"tandem-gwt-{os.urandom(4).hex()}")
        proxy = TcpProxy("127.0.0.1", server.ports["s3.port"])
        target = {"uri": f"s3://{bucket}/tandem", "conn_id": "tandem_gwt_s3", "root": "/backup"}
        store = (server.client(), bucket, "tandem")
    plan = write_plan(base, embedded.home, name, extra={"target": target, "private_data": private})
    plan.env["AIRFLOW_CONN_TANDEM_GATEWAY_KEY"] = _key_env(KEY)
    if proxy is not None:
        conn = json.loads(request.getfixturevalue("s3_server").airflow_connection())
        conn["extra"]["endpoint_url"] = f"http://127.0.0.1:{proxy.port}"
        plan.env["AIRFLOW_CONN_TANDEM_GWT_S3"] = json.dumps(conn)
    with gateway(plan) as gw:
        yield Setup(kind, plan, gw, "/backup", store, proxy)
    if proxy is not None:
        proxy.close()


@pytest.fixture(scope="module")
def direct(embedded: RunningClusters) -> dict[str, InsecureClient]:
    return superusers({n: embedded[n].webhdfs_url for n in ("primary", "primary2")})


def _write(setup: Setup, path: str, data: bytes) -> requests.Response:
    done = create(setup.gw.webhdfs, setup.plan.token, path, data, overwrite=True)
    assert done.status_code == 201, done.text
    return done


def _decrypt(setup: Setup, path: str, out: Path, key: str = KEY) -> subprocess.CompletedProcess[str]:
    env = {**setup.plan.env, "AIRFLOW_CONN_TANDEM_GATEWAY_KEY": _key_env(key)}
    return subprocess.run(
        [
            *TANDEM,
            "gateway",
            "decrypt",
            setup.plan.name,
            path,
            "-o",
            str(out),
            "--home",
            str(setup.plan.home),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_writes_land_on_the_target_with_their_write_time(
    setup: Setup, direct: dict[str, InsecureClient]
) -> None:
    path = f"/{setup.plan.name}/plain/a.bin"
    data = CLEAN["clean.bin"]
    before = int(time.time() * 1000)
    done = _write(setup, path, data)
    after = int(time.time() * 1000)
    assert done.headers["X-Tandem-Backup"] == "done"
    assert setup.stored(path) == data
    written = int(setup.meta(path)["written-ms"])
    assert before <= written <= after
    assert read_or_none(direct[setup.plan.primary_of(path)], path) == data
    # no temporary name is left beside it
    assert setup.stored(f"/{setup.plan.name}/plain/.tandem-gw.x.a.bin") is None


def test_private_files_are_sealed_on_the_target_and_clean_ones_are_not(
    setup: Setup, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    folder = f"/{setup.plan.name}/mixed"
    for name, data in {**PRIVATE, **CLEAN}.items():
        assert _write(setup, f"{folder}/{name}", data).headers["X-Tandem-Backup"] == "done"
    for name, data in PRIVATE.items():
        path = f"{folder}/{name}"
        stored = setup.stored(path)
        assert stored is not None and stored != data and data[:16] not in stored, name
        chunks = max(1, -(-len(data) // CHUNK))
        # a sealed file describes itself: magic, header length, the envelope; then a tag per chunk
        assert stored.startswith(MAGIC), name
        header = len(MAGIC) + 2 + int.from_bytes(stored[len(MAGIC) : len(MAGIC) + 2], "big")
        assert json.loads(stored[len(MAGIC) + 2 : header])["kek"] == MasterKey.from_text(KEY).id
        assert len(stored) == header + len(data) + 16 * chunks, name
        meta = setup.meta(path)
        assert meta["enc-alg"] == "AES-256-GCM-STREAM-1" and meta["enc-kek-id"] == MasterKey.from_text(KEY).id
        # the primary keeps what the application wrote, and reads through the gateway are plain
        assert read_or_none(direct[setup.plan.primary_of(path)], path) == data, name
        with TokenClient(setup.gw.url, setup.plan.token).read(path) as reader:
            assert reader.read() == data
    for name, data in CLEAN.items():
        assert setup.stored(f"{folder}/{name}") == data, name
        assert "enc-alg" not in setup.meta(f"{folder}/{name}")
    # the operator's way back: a text, an image and a file of many chunks decrypt byte for byte
    for name in ("word.txt", "photo.bin", "big-salary.txt"):
        data = PRIVATE[name]
        out = tmp_path / name
        done = _decrypt(setup, f"{folder}/{name}", out)
        assert done.returncode == 0, done.stderr[-2000:]
        assert out.read_bytes() == data, name


def test_a_wrong_key_is_a_clear_error_and_writes_nothing(setup: Setup, tmp_path: Path) -> None:
    path = f"/{setup.plan.name}/wrongkey/salary.txt"
    _write(setup, path, b"salary: 100")
    out = tmp_path / "out.txt"
    done = _decrypt(setup, path, out, key=MasterKey.generate())
    assert done.returncode != 0
    assert "master key" in done.stderr and MasterKey.from_text(KEY).id in done.stderr, done.stderr[-2000:]
    assert not out.exists() and not (tmp_path / "out.txt.part").exists()
    tampered = _decrypt(setup, path, out, key="not a key")
    assert tampered.returncode != 0 and "32-byte key" in tampered.stderr


def test_appends_reach_the_target_whole_through_replay(setup: Setup, tmp_path: Path) -> None:
    """An object store cannot append and a sealed file is not extended: the write is pending until
    replay copies the whole file (sealed again when private)."""
    path = f"/{setup.plan.name}/appended/salary.log"
    _write(setup, path, b"salary 1\n")
    step = requests.post(
        f"{setup.gw.webhdfs}{path}",
        params={"op": "APPEND", "delegation": setup.plan.token},
        allow_redirects=False,
        timeout=60,
    )
    appended = requests.post(step.headers["Location"], data=b"salary 2\n", timeout=60)
    assert appended.status_code == 200 and appended.headers["X-Tandem-Backup"] == "pending"
    done = replay(setup.plan)
    assert done["returncode"] == 0, done
    out = tmp_path / "log"
    assert _decrypt(setup, path, out).returncode == 0
    assert out.read_bytes() == b"salary 1\nsalary 2\n"


def test_an_s3_outage_leaves_writes_pending_until_replay(
    setup: Setup, direct: dict[str, InsecureClient]
) -> None:
    if setup.proxy is None:
        pytest.skip("the NAS directory has no connection to cut")
    path = f"/{setup.plan.name}/outage/f.bin"
    data = payload(path, 20_000)
    setup.proxy.cut()
    try:
        done = _write(setup, path, data)
        assert done.headers["X-Tandem-Backup"] == "pending"
        doc = status(setup.plan)
        assert doc["degraded"] is True
    finally:
        setup.proxy.restore()
    assert setup.stored(path) is None
    assert read_or_none(direct[setup.plan.primary_of(path)], path) == data
    # the gateway's own worker or the command, whichever runs first: the copy arrives whole
    replay(setup.plan)
    deadline = time.monotonic() + 60
    while setup.stored(path) != data:
        assert time.monotonic() < deadline, "the pending write never reached the target"
        time.sleep(0.2)
    assert int(setup.meta(path)["written-ms"]) > 0
