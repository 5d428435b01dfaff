"""An S3-compatible store (``s3://``, through s3fs) as a gateway target.

Objects appear whole when their upload completes, RENAME is copy-and-delete of exact keys
(metadata travel with the copy), directories are only prefixes, metadata are
``x-amz-meta-tandem-*`` sent with the upload, and room is a configured capacity (S3 has none).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from tandem.errors import RemoteHdfsError
from tandem.gateway.targets.fs import UPLOAD_BLOCK, FsspecTarget
from tandem.hdfs.types import FileStatus

log = logging.getLogger(__name__)

SINGLE_COPY_LIMIT = 5 << 30  # S3's largest CopyObject
DELETE_BATCH = 1000  # S3's most keys per DeleteObjects


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

    # s3fs expands ``*``, ``?`` and ``[`` in the paths of ``rm``, ``mv`` and ``copy`` as wildcards:
    # a backup named ``a*`` would take its neighbours with it. Every change here names exact keys.
    def _key(self, path: str) -> tuple[str, str]:
        bucket, key, _ = self.fs.split_path(self._p(path))
        return bucket, key

    def _objects(self, path: str) -> list[str]:
        """The exact keys of every object under the prefix ``path`` (listing never globs)."""
        full = self._p(path).rstrip("/")
        found = self._call(path, lambda: self.fs.find(full))
        return [str(name) for name in found if str(name).startswith(full + "/")]

    def _copy(self, src: str, dst: str) -> None:
        """One object onto another key, server-side, its metadata with it: one CopyObject up to
        S3's 5 GiB limit (s3fs switches to a multipart copy far earlier, and a multipart copy does
        not carry metadata), a multipart copy told the metadata above it."""
        (s_bucket, s_key), (d_bucket, d_key) = self._key(src), self._key(dst)
        head = self._call(src, lambda: self.fs.call_s3("head_object", Bucket=s_bucket, Key=s_key))
        if int(head.get("ContentLength") or 0) <= SINGLE_COPY_LIMIT:
            self._call(
                src,
                lambda: self.fs.call_s3(
                    "copy_object",
                    Bucket=d_bucket,
                    Key=d_key,
                    CopySource={"Bucket": s_bucket, "Key": s_key},
                    MetadataDirective="COPY",
                ),
            )
        else:
            metadata = dict(head.get("Metadata") or {})
            self._call(src, lambda: self.fs.cp_file(self._p(src), self._p(dst), Metadata=metadata))
        self.fs.invalidate_cache(self._p(dst))

    def _remove(self, path: str, keys: list[str]) -> None:
        """Exactly these objects (one DeleteObjects per thousand keys)."""
        bucket, _ = self._key(path)
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": self.fs.split_path(k)[1]} for k in keys[start : start + DELETE_BATCH]]
            out = self._call(
                path,
                lambda b=batch: self.fs.call_s3(  # type: ignore[misc]
                    "delete_objects", Bucket=bucket, Delete={"Objects": b, "Quiet": True}
                ),
            )
            if out.get("Errors"):
                first = out["Errors"][0]
                raise RemoteHdfsError(
                    f"{self.name} did not delete {first.get('Key')}: {first.get('Message')}",
                    exception="IOException",
                )
        self.fs.invalidate_cache(self._p(path))

    def delete(self, path: str, recursive: bool = False) -> bool:
        status = self.status(path)
        if status is None:
            # a writer killed mid-upload left no object, but its parts stay stored (and billed,
            # and outside ``used``) until the upload is aborted
            self._abort_uploads(path)
            return False
        if not status.is_dir:
            self._remove(path, [self._p(path)])
            return True
        keys = self._objects(path)
        if keys and not recursive:
            raise RemoteHdfsError(f"{path} is non empty", exception="PathIsNotEmptyDirectoryException")
        self._remove(path, keys)
        return True

    def _abort_uploads(self, path: str) -> None:
        bucket, key = self._key(path)
        try:
            listed = self._call(
                path, lambda: self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key)
            )
        except RemoteHdfsError as exc:
            if exc.exception != "AccessControlException":
                raise
            # a policy without s3:ListBucketMultipartUploads: the bucket's lifecycle rule for
            # incomplete uploads is then what cleans them up
            log.debug("%s: unfinished uploads of %s not listed: %s", self.name, path, exc)
            return
        for upload in listed.get("Uploads") or []:
            if upload.get("Key") == key:
                self._call(
                    path,
                    lambda u=upload: self.fs.call_s3(  # type: ignore[misc]
                        "abort_multipart_upload", Bucket=bucket, Key=key, UploadId=u["UploadId"]
                    ),
                )

    def _move(self, src: str, dst: str) -> None:
        """Copy, then delete, object by object for a prefix; the copy is checked before the
        source goes."""
        status = self.status(src)
        if status is None:
            raise RemoteHdfsError(f"File does not exist: {src}", exception="FileNotFoundException")
        if not status.is_dir:
            self._copy(src, dst)
            if self.status(dst) is None:
                raise RemoteHdfsError(f"{self.name} did not copy {src} to {dst}", exception="IOException")
            self._remove(src, [self._p(src)])
            return
        base = self._p(src).rstrip("/")
        keys = self._objects(src)
        for key in keys:
            rel = key[len(base) + 1 :]
            self._copy(f"{src}/{rel}", f"{dst}/{rel}")
        self._remove(src, keys)

    def meta(self, path: str) -> dict[str, str]:
        raw = self._call(path, lambda: self.fs.metadata(self._p(path), refresh=True))
        return {k[len("tandem-") :]: str(v) for k, v in raw.items() if k.startswith("tandem-")}

    def _put_meta(self, path: str, meta: Mapping[str, str]) -> None:
        # S3 metadata change only with a copy of the object onto itself (s3fs keeps the rest)
        self._call(
            path, lambda: self.fs.setxattr(self._p(path), **{f"tandem-{k}": v for k, v in meta.items()})
        )
