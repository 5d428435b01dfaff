"""Namespace and space quotas (HDFS's ``DirectoryWithQuotaFeature`` and ``FSDirAttrOp.setQuota``).

Usage is kept per quota directory in the ``quota_usage`` table and charged by every operation that
adds or removes names or bytes, inside that operation's transaction, so usage and tree never
disagree; the refusals carry HDFS's messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from tandem_dev.embedded.hdfs_exceptions import (
    DSQuotaExceeded,
    IllegalArgument,
    NSQuotaExceeded,
    PathIsNotDirectory,
)
from tandem_dev.embedded.namespace.directory import LIVE, QUOTA_DONT_SET, QUOTA_RESET, ROOT_ID, FsDirectory
from tandem_dev.embedded.namespace.values import Parts


@dataclass
class QuotaLimit:
    """The tightest space quota above a write, to stop a stream as soon as it goes past it."""

    max_bytes: int
    path: str
    quota: int
    base_used: int
    replication: int

    def error(self, written: int) -> DSQuotaExceeded:
        return _ds_error(self.path, self.quota, self.base_used + written * self.replication)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{size} B"


def _ds_error(path: str, quota: int, consumed: int) -> DSQuotaExceeded:
    return DSQuotaExceeded(
        f"The DiskSpace quota of {path} is exceeded: quota = {quota} B = {_human(quota)} "
        f"but diskspace consumed = {consumed} B = {_human(consumed)}"
    )


class QuotaOps(FsDirectory):
    """Checking and charging quotas; SETQUOTA."""

    def _quota_rows(self, ancestor_ids: list[int]) -> list[tuple[int, int, int, int, int]]:
        """(id, nsq, ssq, ns_used, ss_used) of the quota directories among ``ancestor_ids``."""
        ids = [i for i in ancestor_ids if i in self._quota_dirs]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(
            f"""SELECT q.id, i.nsq, i.ssq, q.ns_used, q.ss_used FROM quota_usage q
                JOIN inodes i ON i.sid=0 AND i.id=q.id WHERE q.id IN ({marks})""",
            ids,
        ).fetchall()
        return [(int(a), int(b), int(c), int(d), int(e)) for a, b, c, d, e in rows]

    def _check_quota(self, rows: list[tuple[int, int, int, int, int]], names: int, space: int) -> None:
        for inode_id, nsq, ssq, ns_used, ss_used in rows:
            if names > 0 and nsq >= 0 and ns_used + names > nsq:
                raise NSQuotaExceeded(
                    f"The NameSpace quota (directories and files) of directory {self._live_path(inode_id)} "
                    f"is exceeded: quota={nsq} file count={ns_used + names}"
                )
            if space > 0 and ssq >= 0 and ss_used + space > ssq:
                raise _ds_error(self._live_path(inode_id), ssq, ss_used + space)

    def _check_names(self, ancestor_ids: list[int], names: int) -> None:
        """Refuse early what a commit adding ``names`` inodes would refuse."""
        self._check_quota(self._quota_rows(ancestor_ids), names, 0)

    def _charge(self, ancestor_ids: list[int], names: int, space: int, *, check: bool = True) -> None:
        """Add usage to every quota directory among ``ancestor_ids``; refuse what would exceed a quota."""
        if names == 0 and space == 0:
            return
        rows = self._quota_rows(ancestor_ids)
        if not rows:
            return
        if check:
            self._check_quota(rows, names, space)
        ids = [r[0] for r in rows]
        self._db.execute(
            "UPDATE quota_usage SET ns_used=ns_used+?, ss_used=ss_used+? "
            f"WHERE id IN ({','.join('?' * len(ids))})",
            (names, space, *ids),
        )

    def _space_limit(self, ancestor_ids: list[int], replication: int, credit: int) -> QuotaLimit | None:
        best: QuotaLimit | None = None
        for inode_id, _, ssq, _, ss_used in self._quota_rows(ancestor_ids):
            if ssq < 0:
                continue
            base = ss_used - credit
            allowed = max(0, (ssq - base) // max(1, replication))
            if best is None or allowed < best.max_bytes:
                best = QuotaLimit(allowed, self._live_path(inode_id), ssq, base, replication)
        return best

    def set_quota(self, parts: Parts, namespace_quota: int, space_quota: int) -> None:
        """SETQUOTA: Long.MAX_VALUE leaves a quota unchanged, -1 clears it; idempotent."""
        for value in (namespace_quota, space_quota):
            if value < 0 and value not in (QUOTA_RESET, QUOTA_DONT_SET):
                raise IllegalArgument(
                    f"Illegal value for nsQuota or ssQuota : {namespace_quota} and {space_quota}"
                )
        with self._write():
            resolved = self._resolve_live(parts)
            node = self._existing(resolved, "Directory does not exist: {path}")
            if not node.is_dir:
                raise PathIsNotDirectory(f"`{resolved.path}': Is not a directory")
            if node.id == ROOT_ID and namespace_quota == QUOTA_RESET:
                raise IllegalArgument("Cannot clear namespace quota on root.")
            nsq = node.nsq if namespace_quota == QUOTA_DONT_SET else namespace_quota
            ssq = node.ssq if space_quota == QUOTA_DONT_SET else space_quota
            self._db.execute("UPDATE inodes SET nsq=?, ssq=? WHERE sid=0 AND id=?", (nsq, ssq, node.id))
            if nsq < 0 and ssq < 0:
                self._db.execute("DELETE FROM quota_usage WHERE id=?", (node.id,))
                self._quota_dirs.discard(node.id)
            elif node.id not in self._quota_dirs:
                dirs, files, _, space = self._subtree_totals(LIVE, node.id)
                self._db.execute("INSERT INTO quota_usage VALUES (?,?,?)", (node.id, dirs + files, space))
                self._quota_dirs.add(node.id)
