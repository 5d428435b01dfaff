"""Which primary holds a piece of data. Pure.

The data id is the path an application writes, with the temporary suffixes clients write
under stripped (so a file, its temporary name and its later reads reach the same primary), or
an id the client names explicitly. ``bucket = hash(id) mod buckets`` and every bucket belongs
to one primary. The bucket map is an even spread by default, and once a gateway has served a
plan the map is stored with the plan's records on every cluster (:mod:`tandem.gateway.routes`):
a map that would move written data is refused, never applied silently.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Temporary names real clients write before renaming to the final name (cf. HDFS RBF's
# HashResolver): hdfs.upload `<name>.temp-<micros>`, Hadoop's `<name>._COPYING_`, MapReduce
# `<name>.tmp`, fsspec's `<dir>/.tmp.<hex>` (cp_file; its id is the directory).
_TEMP_SUFFIXES = (
    re.compile(r"^(?P<final>.+)\.temp-\d+$"),
    re.compile(r"^(?P<final>.+)\._COPYING_.*$"),
    re.compile(r"^(?P<final>.+)\.COPYING$"),
    re.compile(r"^(?P<final>.+)\.tmp$"),
)
_FSSPEC_TEMP = re.compile(r"^\.tmp\.[0-9a-f]+$")


def data_id(path: str) -> str:
    """The id a path's data is routed by: the path with a temporary suffix stripped."""
    parent, name = posixpath.split(path)
    if _FSSPEC_TEMP.match(name):
        return parent
    for pattern in _TEMP_SUFFIXES:
        match = pattern.match(name)
        if match:
            return posixpath.join(parent, match.group("final"))
    return path


def is_temporary(path: str) -> bool:
    """Whether a path is a client's temporary name (its data is renamed into place later)."""
    return data_id(path) != path


def bucket_of(identifier: str, buckets: int, algorithm: str = "md5") -> int:
    """``hash(id) mod buckets``: the first 8 bytes of the digest as a big-endian integer."""
    digest = hashlib.new(algorithm, identifier.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def even_spread(primaries: Sequence[str], buckets: int) -> tuple[str, ...]:
    """Bucket -> primary, round robin: every primary gets buckets // n or one more."""
    return tuple(primaries[b % len(primaries)] for b in range(buckets))


@dataclass(frozen=True)
class BucketMap:
    """The stored map of a plan: ``owners[b]`` is the primary of bucket ``b``."""

    plan: str
    algorithm: str
    owners: tuple[str, ...]

    @property
    def buckets(self) -> int:
        return len(self.owners)

    @property
    def primaries(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.owners)))

    def primary_of(self, identifier: str) -> str:
        return self.owners[bucket_of(identifier, self.buckets, self.algorithm)]

    def route(self, path: str, explicit_id: str | None = None) -> str:
        """The primary of the data at ``path`` (or of the explicit id the client sent)."""
        return self.primary_of(explicit_id or data_id(path))

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "hash": self.algorithm,
            "buckets": self.buckets,
            "owners": list(self.owners),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> BucketMap:
        owners = tuple(str(o) for o in doc["owners"])
        if len(owners) != int(doc["buckets"]):
            raise ValueError(
                f"routing map of {doc.get('plan')!r} lists {len(owners)} owners for {doc['buckets']} buckets"
            )
        return cls(str(doc["plan"]), str(doc["hash"]), owners)

    @classmethod
    def even(cls, plan: str, primaries: Sequence[str], buckets: int, algorithm: str) -> BucketMap:
        return cls(plan, algorithm, even_spread(primaries, buckets))

    def differences(self, other: BucketMap) -> str | None:
        """Why ``other`` cannot replace this map without moving data, or None when equal."""
        if (self.algorithm, self.buckets) != (other.algorithm, other.buckets):
            return (
                f"the stored map hashes with {self.algorithm} into {self.buckets} buckets, the plan with "
                f"{other.algorithm} into {other.buckets}"
            )
        moved = sum(1 for a, b in zip(self.owners, other.owners, strict=True) if a != b)
        if moved:
            return (
                f"{moved} of {self.buckets} buckets would change primary (stored primaries "
                f"{', '.join(self.primaries)}; plan primaries {', '.join(other.primaries)})"
            )
        return None
