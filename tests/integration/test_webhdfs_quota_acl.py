"""Quotas, ACLs and file checksums on the embedded WebHDFS server, as HDFS defines them."""

from __future__ import annotations

import hashlib
import struct
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hdfs import HdfsError, InsecureClient

from tandem.hdfs.types import AclStatus, FileChecksum, QuotaUsage
from tandem_dev.embedded.webhdfs import WebHdfsServer

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHdfsServer]:
    with WebHdfsServer(tmp_path_factory.mktemp("webhdfs-qa") / "root", superuser="hdfs") as srv:
        yield srv


@pytest.fixture
def client(server: WebHdfsServer) -> InsecureClient:
    return InsecureClient(server.url, user="hdfs")


@pytest.fixture
def base(client: InsecureClient) -> str:
    path = f"/qa-{uuid.uuid4().hex[:10]}"
    client.makedirs(path)
    return path


def call(server: WebHdfsServer, method: str, path: str, op: str, **params: str) -> requests.Response:
    return requests.request(
        method, f"{server.url}/webhdfs/v1{path}", params={"op": op, "user.name": "hdfs", **params}
    )


def set_quota(server: WebHdfsServer, path: str, **quota: str) -> None:
    response = call(server, "PUT", path, "SETQUOTA", **quota)
    assert response.status_code == 200 and response.content == b"", response.text


def usage(server: WebHdfsServer, path: str) -> dict[str, Any]:
    body: dict[str, Any] = call(server, "GET", path, "GETQUOTAUSAGE").json()
    QuotaUsage.from_json(body)  # what tandem's own client will parse
    return dict(body["QuotaUsage"])


def exception(error: HdfsError) -> str:
    return str(error.exception)


# ----------------------------------------------------------------------------------- quotas


def test_namespace_quota(server: WebHdfsServer, client: InsecureClient, base: str) -> None:
    set_quota(server, base, namespacequota="3")  # the directory itself counts
    client.write(f"{base}/one", data=b"1")
    client.makedirs(f"{base}/two")
    with pytest.raises(HdfsError) as excinfo:
        client.write(f"{base}/three", data=b"3")
    assert exception(excinfo.value) == "NSQuotaExceededException"
    assert "quota=3 file count=4" in excinfo.value.message
    with pytest.raises(HdfsError) as excinfo:
        client.makedirs(f"{base}/two/deeper")
    assert exception(excinfo.value) == "NSQuotaExceededException"
    assert client.status(f"{base}/three", strict=False) is None
    assert usage(server, base) == {
        "fileAndDirectoryCount": 3, "quota": 3, "spaceConsumed": 1, "spaceQuota": -1, "typeQuota": {},
    }  # fmt: skip
    client.write(f"{base}/one", data=b"11", overwrite=True)  # replaces: no new name
    client.delete(f"{base}/two")
    client.write(f"{base}/three", data=b"3")
    summary = client.content(base)
    assert (summary["quota"], summary["spaceQuota"], summary["fileCount"]) == (3, -1, 2)
    set_quota(server, base, namespacequota="-1")
    client.write(f"{base}/four", data=b"4")
    assert usage(server, base)["quota"] == -1


def test_space_quota_counts_replication(server: WebHdfsServer, client: InsecureClient, base: str) -> None:
    set_quota(server, base, storagespacequota="1000")
    client.write(f"{base}/a", data=b"a" * 600)
    with pytest.raises(HdfsError) as excinfo:
        client.write(f"{base}/b", data=b"b" * 600)
    assert exception(excinfo.value) == "DSQuotaExceededException"
    assert client.status(f"{base}/b", strict=False) is None  # no partial file
    with pytest.raises(HdfsError) as excinfo:
        client.write(f"{base}/c", data=b"c" * 200, replication=3)  # 600 + 3 x 200 > 1000
    assert exception(excinfo.value) == "DSQuotaExceededException"
    with pytest.raises(HdfsError) as excinfo:
        client.write(f"{base}/a", data=b"+" * 401, append=True)
    assert exception(excinfo.value) == "DSQuotaExceededException"
    assert client.status(f"{base}/a")["length"] == 600  # the failed append left nothing
    with client.read(f"{base}/a") as reader:
        assert reader.read() == b"a" * 600
    client.write(f"{base}/a", data=b"+" * 400, append=True)
    assert usage(server, base)["spaceConsumed"] == 1000
    with pytest.raises(HdfsError):
        client.set_replication(f"{base}/a", 2)
    refused = call(server, "PUT", f"{base}/a", "SETREPLICATION", replication="2")
    assert refused.status_code == 403
    client.delete(f"{base}/a")
    assert usage(server, base)["spaceConsumed"] == 0


def test_space_quota_stops_a_long_stream(server: WebHdfsServer, client: InsecureClient, base: str) -> None:
    set_quota(server, base, storagespacequota=str(2 * MIB))
    with pytest.raises(HdfsError) as excinfo:
        client.write(f"{base}/big", data=(b"x" * MIB for _ in range(16)))  # chunked upload
    assert exception(excinfo.value) == "DSQuotaExceededException"
    assert client.status(f"{base}/big", strict=False) is None
    assert client.list(base) == []
    client.write(f"{base}/fits", data=b"y" * MIB)  # the connection and the quota still work


def test_quota_follows_renames_and_nesting(server: WebHdfsServer, client: InsecureClient, base: str) -> None:
    client.write(f"{base}/outside/f", data=b"z" * 600)
    client.makedirs(f"{base}/limited/inner")
    set_quota(server, f"{base}/limited", storagespacequota="500", namespacequota="10")
    refused = call(server, "PUT", f"{base}/outside/f", "RENAME", destination=f"{base}/limited/inner/f")
    assert refused.status_code == 403
    assert refused.json()["RemoteException"]["exception"] == "DSQuotaExceededException"
    client.write(f"{base}/outside/small", data=b"s" * 100)
    client.rename(f"{base}/outside/small", f"{base}/limited/inner/small")
    assert usage(server, f"{base}/limited")["spaceConsumed"] == 100
    assert usage(server, f"{base}/limited")["fileAndDirectoryCount"] == 3
    client.rename(f"{base}/limited/inner", f"{base}/outside/inner")
    assert usage(server, f"{base}/limited") == {
        "fileAndDirectoryCount": 1, "quota": 10, "spaceConsumed": 0, "spaceQuota": 500, "typeQuota": {},
    }  # fmt: skip


def test_quota_arguments(server: WebHdfsServer, client: InsecureClient, base: str) -> None:
    client.write(f"{base}/file", data=b"f")
    assert call(server, "PUT", f"{base}/file", "SETQUOTA", namespacequota="5").status_code == 403
    assert call(server, "PUT", base, "SETQUOTA", namespacequota="-7").status_code == 400
    assert call(server, "PUT", base, "SETQUOTA", namespacequota="many").status_code == 400
    assert call(server, "PUT", f"{base}/none", "SETQUOTA", namespacequota="5").status_code == 404
    set_quota(server, base, namespacequota="5")
    set_quota(server, base, storagespacequota="7000")  # namespace quota left as it was
    assert (usage(server, base)["quota"], usage(server, base)["spaceQuota"]) == (5, 7000)


# -------------------------------------------------------------------------------------- ACLs


def acl(client: InsecureClient, path: str) -> dict[str, Any]:
    status: dict[str, Any] = client.acl_status(path)
    AclStatus.from_json({"AclStatus": status})
    return status


def test_acl_lifecycle(server: WebHdfsServer, client: InsecureClient, base: str) -> None:
    client.write(f"{base}/f", data=b"f", permission="640")
    assert acl(client, f"{base}/f") == {
        "entries": [], "group": "supergroup", "owner": "hdfs", "permission": "640", "stickyBit": False,
    }  # fmt: skip
    client.set_acl(f"{base}/f", "user::rw-,user:carla:rw-,group::r--,other::---")
    status = acl(client, f"{base}/f")
    assert status["entries"] == ["user:carla:rw-", "group::r--"]
    assert status["permission"] == "660"  # the group bits are now the mask (rw- | r--)
    assert client.status(f"{base}/f")["aclBit"] is True

    client.set_acl(f"{base}/f", "user:dave:r--", clear=False)  # MODIFYACLENTRIES
    assert acl(client, f"{base}/f")["entries"] == ["user:carla:rw-", "user:dave:r--", "group::r--"]
    client.remove_acl_entries(f"{base}/f", "user:carla")
    assert acl(client, f"{base}/f")["entries"] == ["user:dave:r--", "group::r--"]
    assert acl(client, f"{base}/f")["permission"] == "640"
    client.remove_acl(f"{base}/f")
    assert acl(client, f"{base}/f")["entries"] == []
    assert "aclBit" not in client.status(f"{base}/f")
    assert client.status(f"{base}/f")["permission"] == "640"  # group bits back from group::


def test_default_acls_are_inherited(client: InsecureClient, base: str) -> None:
    client.makedirs(f"{base}/shared", permission="750")
    client.set_acl(f"{base}/shared", "default:user:eve:rwx", clear=False)
    entries = acl(client, f"{base}/shared")["entries"]
    assert entries == [
        "default:user::rwx",
        "default:user:eve:rwx",
        "default:group::r-x",
        "default:mask::rwx",
        "default:other::---",
    ]
    client.write(f"{base}/shared/report", data=b"r", permission="640")
    child = acl(client, f"{base}/shared/report")
    assert child["entries"] == ["user:eve:rwx", "group::r-x"]
    assert child["permission"] == "640"  # mask rwx filtered by the requested group bits r--
    client.makedirs(f"{base}/shared/sub")
    assert "default:user:eve:rwx" in acl(client, f"{base}/shared/sub")["entries"]
    client.remove_default_acl(f"{base}/shared")
    assert acl(client, f"{base}/shared")["entries"] == []


def test_acl_errors(server: WebHdfsServer, client: InsecureClient, base: str) -> None:
    client.write(f"{base}/f", data=b"f")
    bad_spec = call(server, "PUT", f"{base}/f", "SETACL", aclspec="user:carla:rwz")
    assert bad_spec.status_code == 400
    incomplete = call(server, "PUT", f"{base}/f", "SETACL", aclspec="user:carla:rwx")
    assert incomplete.status_code == 403
    assert incomplete.json()["RemoteException"]["exception"] == "AclException"
    default_on_file = call(server, "PUT", f"{base}/f", "MODIFYACLENTRIES", aclspec="default:user:x:rwx")
    assert default_on_file.status_code == 403
    missing = call(server, "GET", f"{base}/none", "GETACLSTATUS")
    assert missing.status_code == 404


# ---------------------------------------------------------------------------------- checksums


def hadoop_md5_md5_crc32(data: bytes, block_size: int) -> tuple[str, str]:
    """An independent transcription of HDFS's algorithm, to check the server against."""
    if not data:
        return "MD5-of-0MD5-of-0CRC32", (struct.pack(">iq", 0, 0) + hashlib.md5(bytes(32)).digest()).hex()
    blocks = [data[i : i + block_size] for i in range(0, len(data), block_size)]
    block_md5 = b""
    for block in blocks:
        crcs = b"".join(struct.pack(">I", zlib.crc32(block[i : i + 512])) for i in range(0, len(block), 512))
        block_md5 += hashlib.md5(crcs).digest()
    per_block = block_size // 512 if len(blocks) > 1 else 0
    raw = struct.pack(">iq", 512, per_block) + hashlib.md5(block_md5).digest()
    return f"MD5-of-{per_block}MD5-of-512CRC32", raw.hex()


def test_checksums(client: InsecureClient, base: str) -> None:
    payload = bytes(range(256)) * 10_000 + b"tail"  # 2.4 MiB, not a multiple of 512
    client.write(f"{base}/a", data=payload)
    client.write(f"{base}/b", data=payload)
    client.write(f"{base}/c", data=payload[:-1] + b"T")
    client.write(f"{base}/small-blocks", data=payload, blocksize=MIB)
    client.write(f"{base}/empty", data=b"")
    a, b, c = (client.checksum(f"{base}/{n}") for n in "abc")
    assert a == b and a != c
    assert FileChecksum.from_json({"FileChecksum": a}).length == 28
    assert (a["algorithm"], a["bytes"]) == hadoop_md5_md5_crc32(payload, 128 * MIB)
    multi = client.checksum(f"{base}/small-blocks")
    assert multi["algorithm"] == "MD5-of-2048MD5-of-512CRC32" and multi != a  # same bytes, other layout
    assert (multi["algorithm"], multi["bytes"]) == hadoop_md5_md5_crc32(payload, MIB)
    empty = client.checksum(f"{base}/empty")
    assert (empty["algorithm"], empty["bytes"], empty["length"]) == (*hadoop_md5_md5_crc32(b"", MIB), 28)
    client.write(f"{base}/a", data=b"!", append=True)
    algorithm, raw = hadoop_md5_md5_crc32(payload + b"!", 128 * MIB)
    assert client.checksum(f"{base}/a") == {"algorithm": algorithm, "bytes": raw, "length": 28}
    with pytest.raises(HdfsError) as excinfo:
        client.checksum(base)
    assert excinfo.value.exception == "FileNotFoundException"
