"""The Java exceptions a Hadoop NameNode raises, as the embedded WebHDFS server raises them.

Each class names the Java class it stands for and the HTTP status Hadoop's
``ExceptionHandler`` maps it to (404 for ``FileNotFoundException``, 400 for
``IllegalArgumentException`` and ``UnsupportedOperationException``, 403 for every other
``IOException``, 500 for anything unexpected). The HTTP layer turns them into the
``{"RemoteException": {...}}`` body, so a client sees exactly what a real cluster would say.

They derive from :class:`tandem.errors.RemoteHdfsError` because that is what they are: a remote
HDFS refusing an operation; Python code that drives :class:`~tandem_dev.embedded.namespace.Namespace`
directly can catch them like any error coming back from a real cluster.
"""

from __future__ import annotations

from typing import ClassVar

from tandem.errors import RemoteHdfsError


class HdfsException(RemoteHdfsError):
    """Base: a ``java.io.IOException`` (HTTP 403)."""

    java_class: ClassVar[str] = "java.io.IOException"
    http_status: ClassVar[int] = 403

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message, exception=self.simple_name(), status=self.http_status)

    @classmethod
    def simple_name(cls) -> str:
        return cls.java_class.rsplit(".", 1)[-1].rsplit("$", 1)[-1]  # Java's getSimpleName()

    def remote_exception(self) -> dict[str, dict[str, str]]:
        """The JSON body Hadoop's WebHDFS sends for this exception."""
        return {
            "RemoteException": {
                "exception": self.simple_name(),
                "javaClassName": self.java_class,
                "message": self.message,
            }
        }


class FileNotFound(HdfsException):
    java_class = "java.io.FileNotFoundException"
    http_status = 404


class EndOfFile(HdfsException):
    java_class = "java.io.EOFException"


class FileAlreadyExists(HdfsException):
    java_class = "org.apache.hadoop.fs.FileAlreadyExistsException"


class PathComponentTooLong(HdfsException):
    java_class = "org.apache.hadoop.hdfs.protocol.FSLimitException$PathComponentTooLongException"


class ParentNotDirectory(HdfsException):
    java_class = "org.apache.hadoop.fs.ParentNotDirectoryException"


class PathIsNotDirectory(HdfsException):
    java_class = "org.apache.hadoop.fs.PathIsNotDirectoryException"


class PathIsNotEmptyDirectory(HdfsException):
    java_class = "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"


class AlreadyBeingCreated(HdfsException):
    java_class = "org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException"


class SnapshotError(HdfsException):
    java_class = "org.apache.hadoop.hdfs.protocol.SnapshotException"


class SnapshotAccessControl(HdfsException):
    java_class = "org.apache.hadoop.hdfs.protocol.SnapshotAccessControlException"


class NSQuotaExceeded(HdfsException):
    java_class = "org.apache.hadoop.hdfs.protocol.NSQuotaExceededException"


class DSQuotaExceeded(HdfsException):
    java_class = "org.apache.hadoop.hdfs.protocol.DSQuotaExceededException"


class AclError(HdfsException):
    java_class = "org.apache.hadoop.hdfs.protocol.AclException"


class AccessControl(HdfsException):
    java_class = "org.apache.hadoop.security.AccessControlException"


class IllegalArgument(HdfsException):
    java_class = "java.lang.IllegalArgumentException"
    http_status = 400


class HadoopIllegalArgument(IllegalArgument):
    java_class = "org.apache.hadoop.HadoopIllegalArgumentException"


class InvalidPath(IllegalArgument):
    java_class = "org.apache.hadoop.fs.InvalidPathException"


class UnsupportedOperation(HdfsException):
    java_class = "java.lang.UnsupportedOperationException"
    http_status = 400


class ServerRuntimeError(HdfsException):
    java_class = "java.lang.RuntimeException"
    http_status = 500


READ_ONLY_SNAPSHOT = "Modification on a read-only snapshot is disallowed"
