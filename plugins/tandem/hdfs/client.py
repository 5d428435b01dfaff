"""WebHDFS access for Tandem: the provider's client, plus what the ``hdfs`` package lacks.

The client is always built by Airflow's :class:`WebHDFSHook` from a connection, so HA
NameNode lists, TLS, basic auth and Kerberos come from the provider exactly as for any other
DAG. :class:`Hdfs` then re-uses that client's session (and with it its authentication) for the
operations ``hdfs`` 2.7.3 does not define: snapshot diff and list, the snapshottable directory
list, quota usage and quotas, extended attributes and the filesystem status. Every answer is
parsed once into the frozen values of :mod:`tandem.hdfs.types`; every refusal becomes
:class:`~tandem.errors.RemoteHdfsError` carrying the Java exception name.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import email.utils
import posixpath
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from hdfs.client import Client, _Request
from hdfs.util import HdfsError

from tandem.errors import RemoteHdfsError
from tandem.hdfs.lean import Lean
from tandem.hdfs.types import (
    AclStatus,
    FileChecksum,
    FileStatus,
    FsStatus,
    QuotaUsage,
    SnapshotDiffReport,
    SnapshotInfo,
    SnapshottableDir,
    xattrs_from_json,
)

P = ParamSpec("P")
R = TypeVar("R")

CHUNK = 1 << 20


# what a NameNode answers for a path that cannot exist (AccessControlException is not one of them:
# a non-superuser may get it for a path below a file, but also for a path it may not traverse)
ABSENT = frozenset({"FileNotFoundException", "ParentNotDirectoryException"})


def _literal_paths(client: Any) -> None:
    """Paths name what they say. The ``hdfs`` package expands ``#LATEST`` in any path to the most
    recently changed entry of its directory; HDFS allows a file of that name, and expanding it
    would back up, overwrite or delete another file. Relative paths still start at the home
    directory."""
    original = client.resolve

    def resolve(hdfs_path: str) -> str:
        if not posixpath.isabs(hdfs_path):
            hdfs_path = posixpath.join(original("."), hdfs_path)
        return posixpath.normpath(hdfs_path)

    client.resolve = resolve


def _translate(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the ``hdfs`` package's HdfsError into RemoteHdfsError (keeps the Java name)."""

    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except HdfsError as exc:
            raise RemoteHdfsError(str(exc.message), exception=exc.exception) from exc

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


class _ExtendedClient(Client):  # type: ignore[misc]
    """``hdfs.Client`` with the WebHDFS operations hdfs 2.7.3 does not declare.

    hdfs' metaclass turns each ``_Request`` attribute into a handler for the op named after
    it (``_get_snapshot_diff`` -> ``GETSNAPSHOTDIFF``), with its HA host rotation and retries.
    ``_Request`` is private in hdfs 2.7.3; there is no public extension point.
    """

    _get_snapshot_diff = _Request("GET")
    _get_snapshot_list = _Request("GET")
    _get_snapshottable_directory_list = _Request("GET")
    _get_quota_usage = _Request("GET")
    _set_quota = _Request("PUT")
    _rename = _Request("PUT")
    _set_xattr = _Request("PUT")
    _remove_xattr = _Request("PUT")
    _get_xattrs = _Request("GET")
    _get_status = _Request("GET")
    _get_server_defaults = _Request("GET")
    _get_trash_root = _Request("GET")
    _get_acl_status = _Request("GET")
    _list_xattrs = _Request("GET")
    _check_access = _Request("GET")


# the metaclass names an op after its attribute without underscores: this op keeps its own
_ExtendedClient._list_status_batch = _Request("GET").to_method("LISTSTATUS_BATCH")


@dataclass(frozen=True)
class WalkEntry:
    """One entry under a walked directory: ``relpath`` is relative to the walk's top."""

    relpath: str
    status: FileStatus


class Hdfs:
    """Typed WebHDFS access to one cluster.

    Guarantees are HDFS's own and are stated per method: single-path metadata operations,
    RENAME and CREATESNAPSHOT are atomic on the NameNode; writes are not (a failed write may
    leave a partial file, which callers write under a temporary name and rename).
    """

    def __init__(self, client: Any) -> None:
        # Re-use the provider-built client's session: its auth (basic, TLS or SPNEGO) and
        # its user.name parameter carry over to the extended operations.
        self._client: Any = client
        _read_environment_once(client._session)
        self._ext = _ExtendedClient(
            client.url, proxy=getattr(client, "_proxy", None), session=client._session
        )
        _literal_paths(self._client)
        _literal_paths(self._ext)
        self.url: str = client.url
        self._lean: Lean | None = None

    def enable_lean(self) -> Hdfs:
        """Send the write path's calls (CREATE, APPEND, RENAME, MKDIRS, DELETE, SETXATTR) over the
        session's pools without ``requests``' per-call machinery where the session allows it
        (:mod:`tandem.hdfs.lean`); same answers and errors. For hot paths (the write gateway)."""
        self._lean = Lean.of(self._client)
        return self

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_conn_id(cls, conn_id: str) -> Hdfs:
        """Build from an Airflow connection through the provider's WebHDFSHook (under Kerberos,
        with the server required to authenticate itself: :mod:`tandem.hdfs.hook`).

        The hook probes each NameNode of the connection's host list and keeps the first that
        answers (and, under Kerberos, proves itself); raises the hook's exception when none
        answers, :class:`~tandem.errors.ServerIdentityError` when those that answered could not
        prove themselves.
        """
        from tandem.hdfs.hook import MutualWebHDFSHook

        return cls(MutualWebHDFSHook(webhdfs_conn_id=conn_id).get_conn())

    # -- namespace ------------------------------------------------------------------------
    @_translate
    def status(self, path: str) -> FileStatus | None:
        """GETFILESTATUS; None when the path does not exist (FileNotFoundException, or
        ParentNotDirectoryException: an ancestor is a file). Nothing else: a refusal or a server
        error is raised, never taken for absence. Read-only."""
        try:
            raw = self._client.status(path)
        except HdfsError as exc:
            if exc.exception in ABSENT:
                return None
            raise
        return FileStatus.from_json(raw)

    @_translate
    def list(self, path: str) -> list[FileStatus]:
        """LISTSTATUS of a directory, sorted by name; PathIsNotDirectoryException for a file
        (WebHDFS lists a file as itself, one entry with an empty suffix). Read-only."""
        path = self._client.resolve(path)
        raw = self._client._list_status(path).json()["FileStatuses"]["FileStatus"]
        if len(raw) == 1 and raw[0]["type"] == "FILE" and self._lists_a_file(path, raw[0]["pathSuffix"]):
            raise RemoteHdfsError(f"{path} is not a directory", exception="PathIsNotDirectoryException")
        return sorted((FileStatus.from_json(s) for s in raw), key=lambda s: s.path_suffix)

    @_translate
    def list_batch(self, path: str, start_after: str | None = None) -> tuple[builtins.list[FileStatus], int]:
        """LISTSTATUS_BATCH: one page of a directory after ``start_after`` (the NameNode's
        ``dfs.ls.limit`` entries at most), sorted, and how many entries remain after it;
        PathIsNotDirectoryException for a file. Read-only."""
        path = self._client.resolve(path)
        params = {} if start_after is None else {"startAfter": start_after}
        listing = self._ext._list_status_batch(path, **params).json()["DirectoryListing"]
        raw = listing["partialListing"]["FileStatuses"]["FileStatus"]
        if len(raw) == 1 and raw[0]["type"] == "FILE" and self._lists_a_file(path, raw[0]["pathSuffix"]):
            raise RemoteHdfsError(f"{path} is not a directory", exception="PathIsNotDirectoryException")
        entries = sorted((FileStatus.from_json(s) for s in raw), key=lambda s: s.path_suffix)
        return entries, int(listing.get("remainingEntries", 0))

    def _lists_a_file(self, path: str, suffix: str) -> bool:
        """Whether a listing of one file entry is ``path`` itself: an empty suffix says so; HttpFS
        names the file instead, which a directory holding one file of its own name also shows."""
        if not suffix:
            return True
        if suffix != posixpath.basename(path.rstrip("/")):
            return False
        found = self.status(path)
        return found is not None and not found.is_dir

    def walk(self, top: str) -> Iterator[WalkEntry]:
        """Every file and directory under ``top`` (not ``top`` itself), parents first.

        Not a snapshot: walk a ``.snapshot/<name>`` path for a consistent listing.
        """
        pending = [""]
        while pending:
            rel = pending.pop()
            for status in self.list(posixpath.join(top, rel) if rel else top):
                child = posixpath.join(rel, status.path_suffix) if rel else status.path_suffix
                yield WalkEntry(child, status)
                if status.is_dir:
                    pending.append(child)

    @_translate
    def mkdirs(self, path: str, permission: str | None = None) -> None:
        """MKDIRS; idempotent (an existing directory is fine)."""
        if self._lean is not None:
            self._lean.call("PUT", posixpath.normpath(path), "MKDIRS", permission=permission)
            return
        self._client.makedirs(path, permission=permission)

    @_translate
    def delete(self, path: str, recursive: bool = False) -> bool:
        """DELETE; idempotent: returns False when nothing was there."""
        if self._lean is not None:
            answer = self._lean.call("DELETE", posixpath.normpath(path), "DELETE", recursive=recursive)
            return bool(answer["boolean"])
        return bool(self._client.delete(path, recursive=recursive))

    @_translate
    def rename(self, src: str, dst: str) -> None:
        """RENAME; atomic on the NameNode. Fails when ``dst`` exists or its parent is missing."""
        if self._lean is not None:
            src, dst = posixpath.normpath(src), posixpath.normpath(dst)
            if not self._lean.call("PUT", src, "RENAME", destination=dst)["boolean"]:
                raise RemoteHdfsError(f"Unable to rename {src!r} to {dst!r}.")
            return
        self._client.rename(src, dst)

    @_translate
    def rename_new(self, src: str, dst: str) -> None:
        """RENAME with ``renameoptions=NONE``: fails with FileAlreadyExistsException when ``dst``
        exists (a file or a directory: never a move into it). Atomic on the NameNode."""
        if self._lean is not None:
            src, dst = posixpath.normpath(src), posixpath.normpath(dst)
            self._lean.call("PUT", src, "RENAME", destination=dst, renameoptions="NONE")
            return
        self._ext._rename(src, destination=dst, renameoptions="NONE")

    @_translate
    def replace(self, src: str, dst: str) -> None:
        """RENAME with ``renameoptions=OVERWRITE``: ``dst`` is replaced in one atomic step, so
        readers see the old file or the new one, never neither. ``dst``'s parent must exist."""
        if self._lean is not None:
            src, dst = posixpath.normpath(src), posixpath.normpath(dst)
            self._lean.call("PUT", src, "RENAME", destination=dst, renameoptions="OVERWRITE")
            return
        self._ext._rename(src, destination=dst, renameoptions="OVERWRITE")

    # -- data --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def open(self, path: str, offset: int = 0, length: int | None = None) -> Iterator[Iterator[bytes]]:
        """OPEN as a stream of chunks of at most 1 MiB; never holds the file in memory."""
        try:
            with self._client.read(path, offset=offset, length=length, chunk_size=CHUNK) as chunks:
                yield chunks
        except HdfsError as exc:
            raise RemoteHdfsError(str(exc.message), exception=exc.exception) from exc

    @_translate
    def write(
        self,
        path: str,
        data: Iterable[bytes] | bytes | IO[bytes],
        *,
        overwrite: bool = True,
        permission: str | None = None,
        replication: int | None = None,
        blocksize: int | None = None,
        append: bool = False,
        location: str | None = None,
    ) -> None:
        """CREATE (or APPEND) through the two-step data path. Not atomic: write to a temporary
        name and rename when readers must never see a partial file. ``location``: the DataNode
        URL :meth:`create_location` got for this path and these parameters, when it was asked
        ahead of the data (the NameNode's half is then skipped)."""
        if self._lean is not None and not hasattr(data, "read"):
            body = data if isinstance(data, bytes) else iter(data)
            where = posixpath.normpath(path)
            if location:
                self._lean.send_data(location, body, append=append)
            elif append:
                self._lean.write(where, body, append=True)
            else:
                self._lean.write(
                    where,
                    body,
                    overwrite=overwrite,
                    permission=permission,
                    replication=replication,
                    blocksize=blocksize,
                )
            return
        if append:
            self._client.write(path, data=data, append=True)
            return
        self._client.write(
            path,
            data=data,
            overwrite=overwrite,
            permission=permission,
            replication=replication,
            blocksize=blocksize,
        )

    @_translate
    def create_location(
        self, path: str, *, overwrite: bool = True, permission: str | None = None
    ) -> str | None:
        """The NameNode's half of a CREATE of ``path`` with these parameters, asked ahead of the
        data: the DataNode URL to hand to :meth:`write`. It changes nothing on the cluster. None
        when this client sends the halves together (no lean road: Kerberos, HA lists, TLS)."""
        if self._lean is None:
            return None
        return self._lean.create_location(
            posixpath.normpath(path), overwrite=overwrite, permission=permission
        )

    @_translate
    def read_bytes(self, path: str) -> bytes:
        """The whole file; for small files (manifests) only."""
        with self._client.read(path) as reader:
            data: bytes = reader.read()
            return data

    @_translate
    def checksum(self, path: str) -> FileChecksum:
        """GETFILECHECKSUM: equal for equal bytes written with the same block size."""
        return FileChecksum.from_json({"FileChecksum": self._client.checksum(path)})

    @_translate
    def content_summary(self, path: str) -> dict[str, int]:
        """GETCONTENTSUMMARY as HDFS returns it (fileCount, directoryCount, length, quota...)."""
        summary: dict[str, int] = self._client.content(path)
        return summary

    # -- metadata ------------------------------------------------------------------------------
    @_translate
    def set_owner(self, path: str, owner: str | None, group: str | None) -> None:
        """SETOWNER; idempotent."""
        self._client.set_owner(path, owner=owner, group=group)

    @_translate
    def set_replication(self, path: str, replication: int) -> bool:
        """SETREPLICATION; False for a directory or a missing path, as HDFS answers."""
        return bool(self._client._set_replication(path, replication=replication).json()["boolean"])

    @_translate
    def set_permission(self, path: str, permission: str) -> None:
        """SETPERMISSION; idempotent."""
        self._client.set_permission(path, permission=permission)

    @_translate
    def set_times(self, path: str, modification_time: int, access_time: int | None = None) -> None:
        """SETTIMES (ms since the epoch); idempotent."""
        self._client.set_times(path, modification_time=modification_time, access_time=access_time)

    # read-only ops answered as the NameNode gives them (the write gateway passes these on)
    READ_OPS = {
        "GETTRASHROOT": "_get_trash_root",
        "GETACLSTATUS": "_get_acl_status",
        "GETXATTRS": "_get_xattrs",
        "LISTXATTRS": "_list_xattrs",
        "GETQUOTAUSAGE": "_get_quota_usage",
        "CHECKACCESS": "_check_access",
        "GETSERVERDEFAULTS": "_get_server_defaults",
    }

    @_translate
    def read_op(self, op: str, path: str, **params: object) -> Any:
        """One of :data:`READ_OPS`: its JSON answer (None for an empty one, as CHECKACCESS's)."""
        response = getattr(self._ext, self.READ_OPS[op])(path, **params)
        return response.json() if response.content else None

    @_translate
    def acl_status(self, path: str) -> AclStatus:
        """GETACLSTATUS. Read-only."""
        return AclStatus.from_json({"AclStatus": self._client.acl_status(path)})

    @_translate
    def set_acl(self, path: str, entries: Iterable[str]) -> None:
        """Make the extended ACL entries exactly ``entries`` (as GETACLSTATUS lists them).

        SETACL would need the base user/group/other entries too, so this is REMOVEACL then
        MODIFYACLENTRIES: idempotent, but not atomic (briefly only the permission bits apply).
        """
        spec = ",".join(entries)
        self._client.remove_acl(path)
        if spec:
            self._client.set_acl(path, spec, clear=False)

    @_translate
    def set_xattrs(self, path: str, values: Mapping[str, bytes]) -> None:
        """SETXATTR for each ``prefixed name -> value`` (``user.`` for anyone with write access,
        ``trusted.`` for the superuser), creating or replacing it; other attributes are kept.

        Each attribute is set atomically and idempotently (flag ``CREATE,REPLACE``); the mapping as
        a whole is not atomic: a refusal midway leaves the earlier names set. Empty values read back
        as ``b""``.
        """
        for name, value in values.items():
            encoded = "0s" + base64.b64encode(value).decode("ascii")  # XAttrCodec BASE64
            if self._lean is not None:
                flags = {"xattr.name": name, "xattr.value": encoded, "flag": "CREATE,REPLACE"}
                self._lean.call("PUT", posixpath.normpath(path), "SETXATTR", **flags)
                continue
            self._ext._set_xattr(
                path, **{"xattr.name": name, "xattr.value": encoded, "flag": "CREATE,REPLACE"}
            )

    @_translate
    def remove_xattr(self, path: str, name: str) -> None:
        """REMOVEXATTR of one prefixed name (an error when the path has no such attribute)."""
        self._ext._remove_xattr(path, **{"xattr.name": name})

    @_translate
    def xattrs(self, path: str, names: Iterable[str] | None = None) -> dict[str, bytes]:
        """GETXATTRS: the extended attributes this user may read, ``prefixed name -> value``.

        With ``names``, only those of them that exist: a missing name (or one this user may not
        see) is left out instead of failing the call as HDFS's own name filter would. The prefix
        is matched case-insensitively, as HDFS does. Read-only.
        """
        found = xattrs_from_json(self._ext._get_xattrs(path, encoding="BASE64").json())
        if names is None:
            return found
        wanted = {_xattr_key(n) for n in names}
        return {name: value for name, value in found.items() if name in wanted}

    @_translate
    def default_replication(self) -> int:
        """GETSERVERDEFAULTS' replication: what a file written without one gets. Read-only."""
        return int(self._ext._get_server_defaults("/").json()["FsServerDefaults"]["replication"])

    @_translate
    def fs_status(self, path: str = "/") -> FsStatus:
        """GETSTATUS: capacity, used and remaining bytes of the filesystem holding ``path``."""
        return FsStatus.from_json(self._ext._get_status(path).json())

    # -- snapshots -----------------------------------------------------------------------------
    @_translate
    def allow_snapshot(self, path: str) -> None:
        """ALLOWSNAPSHOT; idempotent. HDFS refuses nested snapshottable directories."""
        self._client.allow_snapshot(path)

    @_translate
    def create_snapshot(self, path: str, name: str) -> str:
        """CREATESNAPSHOT; atomic for the whole tree under ``path``. Fails if ``name`` exists."""
        return str(self._client.create_snapshot(path, snapshotname=name))

    @_translate
    def delete_snapshot(self, path: str, name: str) -> None:
        """DELETESNAPSHOT; fails when the snapshot does not exist (check the list first)."""
        self._client.delete_snapshot(path, name)

    @_translate
    def snapshot_diff(self, path: str, old: str, new: str = "") -> SnapshotDiffReport:
        """GETSNAPSHOTDIFF from ``old`` to ``new`` ("" = the current state). Read-only."""
        res = self._ext._get_snapshot_diff(path, oldsnapshotname=old, snapshotname=new)
        return SnapshotDiffReport.from_json(res.json())

    @_translate
    def snapshots(self, path: str) -> tuple[SnapshotInfo, ...]:
        """GETSNAPSHOTLIST of a snapshottable directory, oldest first. Read-only."""
        res = self._ext._get_snapshot_list(path)
        return tuple(sorted(SnapshotInfo.list_from_json(res.json()), key=lambda s: s.snapshot_id))

    @_translate
    def snapshottable_dirs(self) -> tuple[SnapshottableDir, ...]:
        """GETSNAPSHOTTABLEDIRECTORYLIST (a superuser sees every one). Read-only."""
        res = self._ext._get_snapshottable_directory_list("/")
        return SnapshottableDir.list_from_json(res.json())

    # -- quotas --------------------------------------------------------------------------------
    @_translate
    def quota_usage(self, path: str) -> QuotaUsage:
        """GETQUOTAUSAGE (-1 = no quota). Read-only."""
        return QuotaUsage.from_json(self._ext._get_quota_usage(path).json())

    @_translate
    def set_quota(self, path: str, namespace_quota: int, space_quota: int) -> None:
        """SETQUOTA; -1 clears. Idempotent."""
        self._ext._set_quota(path, namespacequota=namespace_quota, storagespacequota=space_quota)

    # -- time -----------------------------------------------------------------------------------
    def clock_offset_s(self) -> float:
        """This host's clock minus the NameNode's, from the HTTP ``Date`` header (1 s resolution).

        The request's midpoint is compared, so network latency does not count as skew.
        """
        url = self.url.split(";")[0].rstrip("/") + "/webhdfs/v1/?op=GETFILESTATUS"
        before = time.time()
        response = self._client._session.get(url, timeout=10)
        after = time.time()
        header = response.headers.get("Date")
        if not header:
            raise RemoteHdfsError("the NameNode sent no Date header; cannot check clock skew")
        remote = email.utils.parsedate_to_datetime(header).timestamp()
        # Date has 1 s resolution (truncated): the remote instant lies in [remote, remote + 1).
        return (before + after) / 2 - (remote + 0.5)


def _read_environment_once(session: Any) -> None:
    """Make ``session`` read the proxy and CA-bundle variables once per scheme and host.

    With ``trust_env`` (the default) requests scans the whole process environment on every request
    (``Session.merge_environment_settings``): under Airflow, whose environment holds every
    ``AIRFLOW_*`` setting, about 1 ms a call, as much as the call itself to a nearby NameNode. The
    answer depends only on the URL's scheme and host and the arguments, so it is kept per session;
    variables changed while the session lives are not seen (a task's environment is set before it
    starts). Idempotent.
    """
    if not getattr(session, "trust_env", False) or getattr(session, "_tandem_env_once", False):
        return
    original = session.merge_environment_settings
    cache: dict[tuple[Any, ...], dict[str, Any]] = {}
    lock = threading.Lock()

    def merged(url: str, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        where = urlsplit(url)
        try:
            key = (where.scheme, where.netloc, frozenset((proxies or {}).items()), stream, verify, cert)
            hash(key)
        except TypeError:  # an unhashable argument: no caching
            return dict(original(url, proxies, stream, verify, cert))
        with lock:
            found = cache.get(key)
        if found is None:
            found = dict(original(url, proxies, stream, verify, cert))
            with lock:
                cache[key] = found
        return {**found, "proxies": dict(found.get("proxies") or {})}

    setattr(session, "merge_environment_settings", merged)  # noqa: B010 (an instance override)
    setattr(session, "_tandem_env_once", True)  # noqa: B010


def _xattr_key(name: str) -> str:
    """An xattr name as HDFS gives it back: the namespace prefix in lower case."""
    prefix, dot, rest = name.partition(".")
    return f"{prefix.lower()}{dot}{rest}"


def is_missing(exc: BaseException) -> bool:
    """True when a WebHDFS error says the path does not exist."""
    return isinstance(exc, RemoteHdfsError) and exc.exception == "FileNotFoundException"


__all__ = ["Hdfs", "WalkEntry", "is_missing"]
