"""A plan's target, whatever stores it: the protocol of ``target.uri`` picks the driver from
fsspec's registry (``file``, ``s3``, ``webhdfs``...), a ``target.cluster`` is reached like the
primaries, through the provider's WebHDFS hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tandem.gateway.targets.base import WRITTEN_MS, Space, Store, Target, TargetFull
from tandem.gateway.targets.cluster import ClusterTarget
from tandem.gateway.targets.fs import FsspecTarget
from tandem.gateway.targets.local import LocalTarget
from tandem.gateway.targets.s3 import S3Target
from tandem.gateway.targets.webhdfs import WebhdfsTarget

if TYPE_CHECKING:
    from tandem.gateway.plan import Target as TargetSpec
    from tandem.policy.models import Topology

# connect, read, and no retries of its own: the gateway's side health decides when to try again
S3_CONFIG = {"connect_timeout": 3, "read_timeout": 60, "retries": {"max_attempts": 1}}
# the drivers: what :func:`connect_target` builds
TARGET_TYPES = (ClusterTarget, FsspecTarget)
_DRIVERS: dict[str, type[FsspecTarget]] = {
    "file": LocalTarget,
    "local": LocalTarget,
    "s3": S3Target,
    "s3a": S3Target,
    "webhdfs": WebhdfsTarget,
    "swebhdfs": WebhdfsTarget,
}


def storage_options(protocol: str, conn_id: str | None) -> dict[str, Any]:
    """fsspec options for ``protocol`` from an Airflow connection (credentials, endpoint)."""
    from tandem.security import kerberos_enabled

    options: dict[str, Any] = {}
    if protocol in {"s3", "s3a"}:
        options = {"use_listings_cache": False, "skip_instance_cache": True, "config_kwargs": dict(S3_CONFIG)}
    if conn_id is None:
        return options
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    extra = dict(conn.extra_dejson)
    if protocol in {"s3", "s3a"}:
        client_kwargs = {k: extra.pop(k) for k in ("endpoint_url", "region_name") if k in extra}
        if conn.host and "endpoint_url" not in client_kwargs:
            client_kwargs["endpoint_url"] = conn.host
        options.update(key=conn.login, secret=conn.password, client_kwargs=client_kwargs)
    elif protocol in {"webhdfs", "swebhdfs"}:
        options.update(host=conn.host, port=conn.port, user=conn.login)
        if kerberos_enabled():
            # SPNEGO with the server required to prove itself (fsspec's default would not insist),
            # acting as the connection's login (doas), as the cluster clients do
            from requests_kerberos import REQUIRED

            options.update(
                kerberos=True,
                user=None,
                proxy_to=conn.login or None,
                kerb_kwargs={"mutual_authentication": REQUIRED, "sanitize_mutual_error_response": False},
            )
    options.update(extra)  # anything else the driver takes, as the connection's extra says
    return options


def target_appends(spec: TargetSpec) -> bool:
    """Whether the driver of ``spec`` can append to an object in place."""
    if spec.cluster is not None:
        return ClusterTarget.supports_append
    return _DRIVERS.get(spec.protocol, FsspecTarget).supports_append


def _prove_identity(target: FsspecTarget, fs: Any) -> None:
    """A Kerberized NameNode proves itself on a success answer (GETFILESTATUS of ``/``, which
    always exists); requests-kerberos checks only successes, so an impostor answering every call
    with an error would otherwise never be caught. A target that cannot prove itself is down."""
    from tandem.gateway.sides import SideDown

    refusal = f"{target.name}: the server did not prove it is the Kerberos service it claims to be"
    try:
        target._call("/", lambda: fs.info("/"))
    except Exception as exc:
        if not getattr(fs.session.auth, "auth_done", False):
            raise SideDown(refusal) from exc
        raise
    if not getattr(fs.session.auth, "auth_done", False):
        raise SideDown(refusal)


def connect_target(spec: TargetSpec, topology: Topology) -> Callable[[], Target]:
    """How to build the plan's target client (called lazily, in the thread that first needs it)."""
    label = spec.label
    if spec.cluster is not None:
        conn_id = topology.cluster(spec.cluster).webhdfs_conn_id

        def cluster() -> Target:
            from tandem.gateway.sides import hdfs_client

            base = hdfs_client(conn_id)
            target = ClusterTarget(base._client, label, spec.capacity)
            target.enable_lean()
            target._ext._timeout = base._ext._timeout
            return target

        return cluster
    import fsspec

    uri = spec.uri or ""
    parts = urlsplit(uri)
    protocol = parts.scheme
    base = f"{parts.netloc}{parts.path}" if protocol in {"s3", "s3a"} else parts.path

    def fsspec_target() -> Target:
        fs = fsspec.filesystem(protocol, **storage_options(protocol, spec.conn_id))
        if protocol in {"s3", "s3a"}:
            fs.retries = 1  # s3fs retries 5 times with back-off on its own; a side that is down is down
        driver = _DRIVERS.get(protocol, FsspecTarget)
        target = driver(fs, base or "/", label, protocol, spec.capacity)
        auth = getattr(getattr(fs, "session", None), "auth", None)
        if protocol in {"webhdfs", "swebhdfs"} and hasattr(auth, "auth_done"):  # SPNEGO (Kerberos)
            _prove_identity(target, fs)
        return target

    return fsspec_target


__all__ = [
    "TARGET_TYPES",
    "WRITTEN_MS",
    "ClusterTarget",
    "FsspecTarget",
    "LocalTarget",
    "S3Target",
    "Space",
    "Store",
    "Target",
    "TargetFull",
    "connect_target",
    "storage_options",
    "target_appends",
]
