"""One exception root for Tandem; leaves carry what the remote side said.

Callers catch :class:`TandemError` to handle anything Tandem raises on purpose. Leaves that
come from a cluster keep the remote exception's simple Java name (``exception``) so a caller
can branch on it without parsing messages.
"""

from __future__ import annotations


class TandemError(Exception):
    """Root of every error Tandem raises on purpose."""


class UsageError(TandemError):
    """A command was called without what it needs (exit 2, as argparse's own usage errors)."""


class ConfigError(TandemError):
    """A policy or cluster file is invalid: names the file, the field and the reason."""

    def __init__(self, file: str, field: str, reason: str) -> None:
        self.file = file
        self.field = field
        self.reason = reason
        super().__init__(f"{file}: {field}: {reason}")


class ConfigErrors(ConfigError):
    """Every problem found in one file, one ``file: field: reason`` per line (the first one's
    fields are this error's own)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        self.errors = tuple(errors)
        self.file, self.field, self.reason = first.file, first.field, first.reason
        TandemError.__init__(self, "\n".join(str(e) for e in errors))


class ClusterError(TandemError):
    """A cluster refused or failed a request."""


class RemoteHdfsError(ClusterError):
    """WebHDFS answered with a RemoteException.

    ``exception`` is the Java simple name (``FileNotFoundException``, ``SnapshotException``,
    ``DSQuotaExceededException``...), ``status`` the HTTP code when known.
    """

    def __init__(self, message: str, exception: str | None = None, status: int | None = None) -> None:
        self.exception = exception
        self.status = status
        super().__init__(f"{exception}: {message}" if exception else message)


class ServerIdentityError(ClusterError):
    """A server could not prove it is the Kerberos service it claims to be (no mutual
    authentication): Tandem refuses to use it."""


class MetastoreError(ClusterError):
    """The Hive metastore answered with an error (NoSuchObject, AlreadyExists, Meta...)."""


class ZooKeeperError(ClusterError):
    """A ZooKeeper ensemble could not be reached or answered unexpectedly."""


class EmbeddedError(TandemError):
    """The embedded clusters could not be started, found or stopped; the message says what to do."""


class PreflightError(TandemError):
    """A backup may not start: roles, clock skew, space or reachability say no."""


class SnapshotRootError(TandemError):
    """A dataset cannot be snapshotted atomically (for example a snapshottable descendant)."""


class ConsistencyError(TandemError):
    """The snapshots of one restore point are further apart than the policy allows."""


class CopyError(TandemError):
    """A copied file does not match its source, or the copy could not complete."""


class VerificationError(TandemError):
    """A restore point does not check out: the message lists what differs."""


class RestoreError(TandemError):
    """A business cannot be brought back to a point; the message says why."""


class NoPoint(RestoreError):
    """The cluster answered and holds no published point of the business (a read that failed is
    a plain RestoreError: it says nothing about which points exist)."""
