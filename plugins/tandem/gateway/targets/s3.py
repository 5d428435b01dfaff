"""An S3-compatible store (``s3://``, through s3fs) as a gateway target.

Objects appear whole when their upload completes, RENAME is copy-and-delete (metadata travel with
the copy), directories are only prefixes, metadata are ``x-amz-meta-tandem-*`` sent with the
upload, and room is a configured capacity (S3 has none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tandem.errors import RemoteHdfsError
from tandem.gateway.targets.fs import UPLOAD_BLOCK, FsspecTarget
from tandem.hdfs.types import FileStatus


class S3Target(FsspecTarget):
    """A bucket (and prefix) of an S3-compatible store."""

    def _open_write(self, full: str, meta: Mapping[str, str]) -> Any:
        metadata = {f"tandem-{k}": v for k, v in meta.items()}
        return self.fs.open(full, "wb", block_size=UPLOAD_BLOCK, Metadata=metadata)

    def _after_write(self, path: str, meta: Mapping[str, str], permission: str | None) -> None:
        return None  # the metadata went with the upload

    def mkdirs(self, path: str, permission: str | None = None) -> None:
        return None  # a prefix exists while it holds an object

    def status(self, path: str) -> FileStatus | None:
        """A prefix exists while it holds an object (some servers keep emptied "folders")."""
        found = super().status(path)
        if found is not None and found.is_dir and path.strip("/"):
            bucket, _, key = self._p(path).partition("/")
            listed = self._call(
                path,
                lambda: self.fs.call_s3(
                    "list_objects_v2", Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1
                ),
            )
            if not listed.get("KeyCount"):
                return None
        return found

    def _move(self, src: str, dst: str) -> None:
        """Copy, then delete: object by object for a prefix (s3fs's recursive move also tries to
        copy the prefix itself, which is no object)."""
        status = self.status(src)
        if status is None:
            raise RemoteHdfsError(f"File does not exist: {src}", exception="FileNotFoundException")
        if not status.is_dir:
            self._call(src, lambda: self.fs.mv(self._p(src), self._p(dst)))
            return
        for entry in list(self.walk(src)):
            if not entry.status.is_dir:
                source, target = self._p(f"{src}/{entry.relpath}"), self._p(f"{dst}/{entry.relpath}")
                self._call(src, lambda s=source, t=target: self.fs.copy(s, t))  # type: ignore[misc]
        self._call(src, lambda: self.fs.rm(self._p(src), recursive=True))

    def meta(self, path: str) -> dict[str, str]:
        raw = self._call(path, lambda: self.fs.metadata(self._p(path), refresh=True))
        return {k[len("tandem-") :]: str(v) for k, v in raw.items() if k.startswith("tandem-")}

    def _put_meta(self, path: str, meta: Mapping[str, str]) -> None:
        # S3 metadata change only with a copy of the object onto itself (s3fs keeps the rest)
        self._call(
            path, lambda: self.fs.setxattr(self._p(path), **{f"tandem-{k}": v for k, v in meta.items()})
        )
