"""The ``webhdfs`` copy engine: files streamed from one cluster to the other, in parallel.

Each file is read from the source's snapshot (so it cannot change under the copy), written
to the target through the two-step data path with the source's block size and replication,
then verified by length and GETFILECHECKSUM, and only then given the source's owner, group,
permission, ACL and modification time. A file whose copy fails or does not verify keeps a
fresh modification time, so the next run's comparison always copies it again. Each verified
file's length, modification time and checksum are kept (:attr:`CopyStats.verified`): publishing
the point trusts them as it trusts the previous point's records, instead of checksumming again.

Requests per file: OPEN and CREATE (two each: the NameNode redirects to a DataNode), one
GETFILESTATUS and two GETFILECHECKSUM (two each) to verify, GETXATTRS of the source (its
``user.`` attributes; SETXATTR only for those it has), SETTIMES, and SETOWNER, SETPERMISSION or
the ACL calls only when CREATE's parameters left them different.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from tandem.errors import CopyError
from tandem.hdfs.client import Hdfs
from tandem.hdfs.types import FileStatus

log = logging.getLogger(__name__)

XATTR_NAMESPACE = "user."


@dataclass(frozen=True)
class FileCopy:
    """Copy ``src`` (usually under ``.snapshot/<name>``) to ``dst``; ``status`` is the source's."""

    src: str
    dst: str
    status: FileStatus


class Throttle:
    """At most ``rate`` bytes per second through :meth:`pace`, shared by every copy thread.

    Each chunk is given the next free slot of the link, ``len(chunk) / rate`` seconds long,
    and waits for its start: over a copy the bytes take their size over the rate, however many
    threads send them. ``clock`` and ``sleep`` are injectable for tests. Thread-safe.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"a bandwidth must be more than zero, got {rate}")
        self.rate = rate
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._free_at: float | None = None

    def pace(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.wait(len(chunk))
            yield chunk

    def wait(self, nbytes: int) -> None:
        with self._lock:
            now = self._clock()
            start = now if self._free_at is None else max(now, self._free_at)
            self._free_at = start + nbytes / self.rate
        if start > now:
            self._sleep(start - now)


class Checkpoint:
    """A check that the copy may go on (the pair still as the run saw it), run at most every
    ``every_s`` seconds by whichever copy thread comes first: before each file and between the
    chunks of a long one. A check that raises stops the copy; once it has raised it keeps
    raising, so no other thread starts another file. Thread-safe."""

    def __init__(
        self, check: Callable[[], None], every_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._check, self.every_s, self._clock = check, every_s, clock
        self._lock = threading.Lock()
        self._next = clock() + every_s  # the step checked just before the copy began
        self._failed: BaseException | None = None

    def __call__(self) -> None:
        with self._lock:
            if self._failed is None and self._clock() < self._next:
                return
            if self._failed is None:
                try:
                    self._check()
                except BaseException as exc:
                    self._failed = exc
                self._next = self._clock() + self.every_s
            if self._failed is not None:
                raise self._failed

    def between(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self()
            yield chunk


@dataclass
class CopyStats:
    """Counters shared by the copy threads; read ``summary()`` at the end.

    ``verified``: target path -> ``[length, modification time, "algorithm:checksum"]`` of each
    file copied and verified, as the file stands once its metadata is set (the per-file record
    format of :mod:`tandem.verify`).
    """

    files: int = 0
    bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    verified: dict[str, list[Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, nbytes: int, path: str | None = None, record: list[Any] | None = None) -> None:
        with self._lock:
            self.files += 1
            self.bytes += nbytes
            if path is not None and record is not None:
                self.verified[path] = record

    @property
    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def summary(self) -> str:
        rate = self.bytes / self.elapsed / 1e6
        return f"{self.files} files, {self.bytes / 1e6:.1f} MB in {self.elapsed:.1f} s ({rate:.1f} MB/s)"


def user_xattrs(hdfs: Hdfs, path: str) -> dict[str, bytes]:
    """The ``user.`` extended attributes of a path (what any owner may set; other namespaces are
    the cluster's own)."""
    return {k: v for k, v in hdfs.xattrs(path).items() if k.lower().startswith(XATTR_NAMESPACE)}


def apply_xattrs(target: Hdfs, path: str, wanted: dict[str, bytes], held: dict[str, bytes] | None) -> None:
    """Make ``path``'s ``user.`` attributes ``wanted`` (``held``: what it has, None to read it)."""
    held = user_xattrs(target, path) if held is None else held
    changed = {k: v for k, v in wanted.items() if held.get(k) != v}
    if changed:
        target.set_xattrs(path, changed)
    for name in sorted(set(held) - set(wanted)):
        target.remove_xattr(path, name)


def apply_metadata(
    target: Hdfs, path: str, status: FileStatus, acl: Iterable[str] | None, current: FileStatus | None = None
) -> None:
    """Owner, group, permission, ACL and times of ``status`` onto ``path``. Idempotent.

    ``current`` (the path's status, when the caller has it) skips what already matches.
    ``acl`` None leaves the ACL alone when neither side has one. Extended attributes are
    :func:`apply_xattrs`' (before this: setting one changes no time, but keep times last).
    """
    if current is None or (current.owner, current.group) != (status.owner, status.group):
        target.set_owner(path, status.owner, status.group)
    if current is None or current.permission != status.permission:
        target.set_permission(path, status.permission)
    if acl is not None or (current is not None and current.acl_bit):
        target.set_acl(path, acl or ())
    target.set_times(path, status.modification_time, status.access_time or None)


class WebHdfsCopier:
    """Streams files between two clusters with ``parallelism`` threads.

    ``copy_files`` is safe to retry: every file is rewritten whole (overwrite) and verified.
    """

    def __init__(
        self,
        source: Hdfs,
        target: Hdfs,
        parallelism: int = 8,
        progress_every_s: float = 5.0,
        max_bandwidth: float | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.parallelism = max(1, parallelism)
        self.progress_every_s = progress_every_s
        self.throttle = Throttle(max_bandwidth) if max_bandwidth else None
        self.checkpoint = checkpoint

    def copy_one(self, item: FileCopy, stats: CopyStats) -> None:
        """Copy, verify, then set metadata. Raises CopyError when the copy does not verify, and
        whatever the checkpoint raises (before the file, or between its chunks)."""
        status = item.status
        if self.checkpoint is not None:
            self.checkpoint()
        # CREATE makes missing parent directories itself (WebHDFS semantics)
        with self.source.open(item.src) as chunks:
            body: Iterable[bytes] = self.checkpoint.between(chunks) if self.checkpoint else chunks
            self.target.write(
                item.dst,
                self.throttle.pace(body) if self.throttle else body,
                overwrite=True,
                permission=status.permission,
                replication=status.replication or None,
                blocksize=status.block_size or None,
            )
        copied, checksum = self.verify(item)
        acl = self.source.acl_status(item.src).entries if status.acl_bit else None
        # the copy is a new file: it holds no attributes yet
        apply_xattrs(self.target, item.dst, user_xattrs(self.source, item.src), {})
        apply_metadata(self.target, item.dst, status, acl, current=copied)
        stats.add(status.length, item.dst, [status.length, status.modification_time, checksum])

    def verify(self, item: FileCopy) -> tuple[FileStatus, str]:
        """Length and checksum of the copy equal the source's; returns the copy's status and
        its checksum as ``algorithm:bytes``."""
        copied = self.target.status(item.dst)
        if copied is None or copied.length != item.status.length:
            got = None if copied is None else copied.length
            raise CopyError(f"{item.dst}: length {got} after copy, source has {item.status.length}")
        src_sum, dst_sum = self.source.checksum(item.src), self.target.checksum(item.dst)
        if (src_sum.algorithm, src_sum.bytes) != (dst_sum.algorithm, dst_sum.bytes):
            raise CopyError(f"{item.dst}: checksum {dst_sum.bytes} differs from source {src_sum.bytes}")
        return copied, f"{dst_sum.algorithm}:{dst_sum.bytes}"

    def copy_files(self, items: Iterable[FileCopy], label: str = "copy") -> CopyStats:
        """Copy every item; stops at the first failure and raises it after in-flight copies end."""
        stats = CopyStats()
        todo = list(items)
        if not todo:
            return stats
        total_bytes = sum(i.status.length for i in todo)
        log.info(
            "%s: %d files, %.1f MB to copy with %d threads",
            label,
            len(todo),
            total_bytes / 1e6,
            self.parallelism,
        )
        with ThreadPoolExecutor(self.parallelism, thread_name_prefix="tandem-copy") as pool:
            pending: set[Future[None]] = set()
            for item in todo:
                pending.add(pool.submit(self.copy_one, item, stats))
            last = time.monotonic()
            while pending:
                done, pending = wait(pending, timeout=self.progress_every_s, return_when=FIRST_EXCEPTION)
                failed = [f for f in done if f.exception() is not None]
                if failed:
                    for f in pending:
                        f.cancel()
                    raise failed[0].exception()  # type: ignore[misc]
                if time.monotonic() - last >= self.progress_every_s:
                    last = time.monotonic()
                    log.info(
                        "%s: %d/%d files, %.1f/%.1f MB, %.1f MB/s",
                        label,
                        stats.files,
                        len(todo),
                        stats.bytes / 1e6,
                        total_bytes / 1e6,
                        stats.bytes / stats.elapsed / 1e6,
                    )
        log.info("%s: done, %s", label, stats.summary())
        return stats
