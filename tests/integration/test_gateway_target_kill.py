"""A gateway SIGKILLed in the middle of a private upload to a NAS directory or an S3 bucket:
nothing is ever visible on the target under the file's name (neither partial nor sealed in
part), what was acknowledged before is intact, and replay leaves no temporary object behind."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tandem.gateway.crypto import MAGIC, MasterKey
from tandem_dev.embedded.manager import RunningClusters
from tandem_dev.s3 import SeaweedS3
from tests.integration.gateway_support import (
    create,
    gateway,
    payload,
    read_or_none,
    replay,
    superusers,
    wait_for,
    write_plan,
)
from tests.integration.test_gateway_faults import SlowBody, Upload

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("gateway_target_kill")]

KEY = MasterKey.generate()


class Store:
    """What the target holds, read with the store's own tools."""

    def __init__(self, kind: str, where: Any) -> None:
        self.kind, self.where = kind, where

    def names(self, folder: str) -> list[str]:
        if self.kind == "file":
            full = self.where / folder.lstrip("/")
            return sorted(p.name for p in full.iterdir()) if full.exists() else []
        client, bucket, prefix = self.where
        listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}{folder}/").get("Contents", [])
        return sorted(o["Key"].rsplit("/", 1)[1] for o in listed)

    def read(self, path: str) -> bytes | None:
        if self.kind == "file":
            full = self.where / path.lstrip("/")
            return full.read_bytes() if full.exists() else None
        client, bucket, prefix = self.where
        try:
            body: bytes = client.get_object(Bucket=bucket, Key=f"{prefix}{path}")["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
        return body

    def unfinished_uploads(self) -> list[str]:
        """Multipart uploads begun and neither completed nor aborted (an object store's parts,
        stored and billed, though no object shows them)."""
        if self.kind == "file":
            return []
        client, bucket, _prefix = self.where
        return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


@pytest.fixture(params=["file", "s3"])
def target(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[dict[str, Any], dict[str, str], Store]]:
    if request.param == "file":
        nas = tmp_path / "nas"
        nas.mkdir()
        yield {"uri": f"file://{nas}", "root": "/backup"}, {}, Store("file", nas)
        return
    server: SeaweedS3 = request.getfixturevalue("s3_server")
    bucket = server.make_bucket(f"tandem-kill-{os.urandom(4).hex()}")
    env = {"AIRFLOW_CONN_TANDEM_KILL_S3": server.airflow_connection()}
    spec = {"uri": f"s3://{bucket}/t", "conn_id": "tandem_kill_s3", "root": "/backup"}
    yield spec, env, Store("s3", (server.client(), bucket, "t"))
    server.remove_bucket(bucket)


def test_a_gateway_killed_mid_upload_to_a_target_leaves_nothing_torn(
    embedded: RunningClusters, tmp_path: Path, target: tuple[dict[str, Any], dict[str, str], Store]
) -> None:
    spec, env, store = target
    name = f"gwtk{store.kind}"  # each target its own plan and paths on the shared primaries
    rules = {"words": ["salary"], "key_conn_id": "tandem_kill_key", "chunk": 65536}
    plan = write_plan(tmp_path, embedded.home, name, extra={"target": spec, "private_data": rules})
    plan.env.update(env)
    plan.env["AIRFLOW_CONN_TANDEM_KILL_KEY"] = json.dumps({"conn_type": "generic", "password": KEY})
    folder, backup = f"/{name}/data", f"/backup/{name}/data"
    big = f"{folder}/salaries.csv"
    # past one upload part (8 MiB): an object store has begun a multipart upload when it dies
    big_data = b"name,salary\n" + payload(big, 6 << 20).hex().encode()[: 12 << 20]
    done = {f"{folder}/before-{i}.csv": b"salary," + payload(str(i), 20_000).hex().encode() for i in range(3)}
    with gateway(plan, "--no-worker") as gw:
        for path, data in done.items():
            answer = create(gw.webhdfs, plan.token, path, data)
            assert answer.status_code == 201 and answer.headers["X-Tandem-Backup"] == "done", answer.text
        body = SlowBody(big_data, pause_at=10 << 20)
        upload = Upload(gw.webhdfs, plan.token, big, body)
        upload.start()
        assert body.paused.wait(30)
        if store.kind == "s3":
            wait_for("the first part uploaded", store.unfinished_uploads)
        gw.kill()  # SIGKILL while half the file went to the primary and the target
        body.resume()
        upload.join(60)
    assert upload.response is None or upload.response.status_code != 201, "acknowledged after SIGKILL?"
    # the target never shows the file's name, however far the copy got; what was acknowledged stays
    assert "salaries.csv" not in store.names(backup)
    for path in done:
        sealed = store.read("/backup" + path)
        assert sealed is not None and sealed.startswith(MAGIC), path
    direct = superusers({n: embedded[n].webhdfs_url for n in plan.primaries})
    held = read_or_none(direct[plan.primary_of(big)], big)
    assert held is None or held == big_data  # never torn on the primary either

    report = replay(plan, "--inflight-grace", "0")
    assert report["returncode"] == 0 and report["problems"] == [], report
    leftovers = [n for n in store.names(backup) if n.startswith(".tandem-gw.")]
    assert leftovers == [], leftovers
    assert store.unfinished_uploads() == []  # the dead upload's parts are aborted too
    assert "salaries.csv" not in store.names(backup) or held == big_data
