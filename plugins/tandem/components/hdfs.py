"""Plain HDFS directories: the dataset is its path."""

from __future__ import annotations

import posixpath

from tandem.components.base import ResolvedDataset
from tandem.errors import SnapshotRootError
from tandem.hdfs.client import Hdfs
from tandem.metastore import Metastore


class HdfsComponent:
    kind = "hdfs"

    def resolve(
        self, name: str, hdfs: Hdfs, metastore: Metastore | None, nameservice: str | None = None
    ) -> ResolvedDataset:
        path = posixpath.normpath(name)
        status = hdfs.status(path)
        if status is None:
            raise SnapshotRootError(f"hdfs dataset {path} does not exist on the source cluster")
        if not status.is_dir:
            raise SnapshotRootError(f"hdfs dataset {path} is a file; protect its directory instead")
        return ResolvedDataset(self.kind, name, (path,))
