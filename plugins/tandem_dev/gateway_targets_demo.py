"""The targets part of ``tandem demo``: the same gateway backing up to a NAS directory with a
small capacity (so it evicts its oldest backups) and to a real S3 server (SeaweedFS on
loopback), with private files sealed on both, and one decrypted back with ``tandem gateway
decrypt`` as an operator would.

The two plans are written into a demo include directory beside the embedded clusters' home
(``<home>/demo-include/gateway/``), since their targets exist only while the demo runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml

from tandem.errors import TandemError
from tandem.gateway.crypto import MasterKey
from tandem_dev.gateway_demo import serving
from tandem_dev.s3 import SeaweedS3

RULES = {
    "words": ["passport", "salary"],
    "patterns": ["id_card_cn", "phone_cn", "email", "credit_card"],
    "images": True,
    "key_conn_id": "tandem_demo_key",
}
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 2000
CAPACITY = 64 * 1024


def _profile(i: int) -> tuple[str, bytes]:
    """Customer profiles: every third one carries a passport number, every fifth a photo."""
    if i % 5 == 4:
        return f"photo-{i:02d}.png", PNG + bytes([i]) * 4000
    note = f"passport E{1000000 + i}" if i % 3 == 0 else "no documents on file"
    return f"profile-{i:02d}.txt", (f"customer {i}\n{note}\n" + "x" * 9000).encode()


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tandem.cli", *args], env=env, capture_output=True, text=True
    )


def _put(url: str, token: str, path: str, body: bytes) -> str:
    r = requests.put(
        f"{url}/webhdfs/v1{path}",
        params={"op": "CREATE", "data": "true", "overwrite": "true", "delegation": token},
        data=body,
        timeout=60,
    )
    if r.status_code != 201:
        raise TandemError(f"gateway refused {path}: {r.status_code} {r.text[:200]}")
    return str(r.headers["X-Tandem-Backup"])


def _plan(include: Path, name: str, target: dict[str, Any], **more: Any) -> None:
    doc = {"plan": name, "roots": [f"/{name}"], "primaries": ["primary", "primary2"], "target": target}
    (include / "gateway" / f"{name}.yaml").write_text(yaml.safe_dump({**doc, **more}, sort_keys=False))


def run_targets_demo(
    home: Path, project: Path, base_env: dict[str, str], say: Callable[[str], None]
) -> dict[str, Any]:
    include = home / "demo-include"
    shutil.rmtree(include, ignore_errors=True)
    (include / "gateway").mkdir(parents=True)
    shutil.copy(project / "include" / "clusters.yaml", include / "clusters.yaml")
    nas = home / "nas"
    shutil.rmtree(nas, ignore_errors=True)
    nas.mkdir()
    key, token = MasterKey.generate(), os.urandom(16).hex()
    digest = hashlib.sha256(token.encode()).hexdigest()
    with SeaweedS3(home / "s3") as s3:
        bucket = s3.make_bucket(f"tandem-archive-{os.urandom(3).hex()}")
        _plan(
            include,
            "profiles",
            {"uri": f"file://{nas}", "root": "/profiles", "capacity": CAPACITY},
            private_data=RULES,
            space={"evict": "oldest"},
        )
        _plan(
            include,
            "archive",
            {"uri": f"s3://{bucket}/tandem", "conn_id": "tandem_demo_s3", "root": "/archive"},
            private_data=RULES,
        )
        env = {
            **base_env,
            "TANDEM_INCLUDE": str(include),
            "AIRFLOW_CONN_TANDEM_DEMO_KEY": json.dumps({"conn_type": "generic", "password": key}),
            "AIRFLOW_CONN_TANDEM_DEMO_S3": s3.airflow_connection(),
            "AIRFLOW_VAR_TANDEM_GATEWAY_TOKENS__PROFILES": json.dumps({digest: {"user": "web"}}),
            "AIRFLOW_VAR_TANDEM_GATEWAY_TOKENS__ARCHIVE": json.dumps({digest: {"user": "web"}}),
        }
        say(
            f"Gateway targets: a NAS directory ({CAPACITY // 1024} KiB for plan profiles) "
            f"and S3 at {s3.endpoint_url} (plan archive)"
        )
        nas_result = _nas_part(home, env, token, nas, say)
        s3_result = _s3_part(home, env, token, s3, bucket, say)
    return {"nas": nas_result, "s3": s3_result}


def _nas_part(
    home: Path, env: dict[str, str], token: str, nas: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    written: dict[str, bytes] = {}
    with serving(str(home), env, "profiles") as url:
        for i in range(10):
            name, body = _profile(i)
            _put(url, token, f"/profiles/{name}", body)
            written[name] = body
    held = sorted(p.name for p in (nas / "profiles" / "profiles").iterdir() if not p.name.startswith("."))
    status = json.loads(_cli(["gateway", "status", "profiles", "--home", str(home), "--json"], env).stdout)
    sealed = [n for n in held if (nas / "profiles" / "profiles" / n).read_bytes() != written[n]]
    say(
        f"  NAS: 10 profiles written, {len(held)} kept within {CAPACITY // 1024} KiB after "
        f"{status['evictions']} eviction run(s) (oldest first); sealed there: {', '.join(sealed)}"
    )
    probe = next(n for n in sealed if n.endswith(".txt"))
    out = home / "decrypted.txt"
    done = _cli(
        ["gateway", "decrypt", "profiles", f"/profiles/{probe}", "-o", str(out), "--home", str(home)], env
    )
    same = done.returncode == 0 and out.read_bytes() == written[probe]
    say(f"  tandem gateway decrypt profiles /profiles/{probe}: plaintext back byte for byte: {same}")
    return {
        "written": 10,
        "kept": held,
        "evictions": status["evictions"],
        "sealed": sealed,
        "decrypted_ok": same,
    }


def _s3_part(
    home: Path, env: dict[str, str], token: str, s3: SeaweedS3, bucket: str, say: Callable[[str], None]
) -> dict[str, Any]:
    written: dict[str, bytes] = {}
    with serving(str(home), env, "archive") as url:
        for i in range(12):
            name, body = _profile(i)
            _put(url, token, f"/archive/{name}", body)
            written[name] = body
    client = s3.client()
    objects = client.list_objects_v2(Bucket=bucket, Prefix="tandem/archive/archive/")["Contents"]
    heads = [client.head_object(Bucket=bucket, Key=obj["Key"])["Metadata"] for obj in objects]
    stamped = sum(1 for meta in heads if "tandem-written-ms" in meta)
    sealed = sum(1 for meta in heads if "tandem-enc-alg" in meta)
    say(
        f"  S3: {len(objects)} of 12 objects in bucket {bucket}, {stamped} with "
        f"x-amz-meta-tandem-written-ms; {sealed} sealed (AES-256-GCM, key wrapped by the plan's master key)"
    )
    return {"written": 12, "objects": len(objects), "stamped": stamped, "sealed": sealed}
