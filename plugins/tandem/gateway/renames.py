"""RENAME across primaries, as HDFS's Router treats a HASH mount whose subclusters are the plan's
primaries.

A plan routes each file by a hash of its whole path, so a new name may belong to another
primary than the one holding the data. The gateway then does what the Router does:

- a **file** moves whole to its new name's primary (copy under a hidden name, publish, delete
  the old one), the Router's DISTCP rename option;
- a **directory** is renamed on every primary holding part of it, its files staying where they
  are; when some of them would then sit on a primary their new names are not routed to, the
  rename is **refused** with an ``IOException`` (403) and nothing changes, as the Router refuses
  renames across subclusters. Allowing it would strand them: a later write of such a name goes
  to its routed primary and leaves the old copy behind, an orphan that merged listings show;
- while the source's primary is down, only a file that stays on that primary is renamed (on
  the standby, pending-store for the primary); anything else waits for it
  (``RetriableException``, 503).
"""

from __future__ import annotations

import logging
import posixpath

from tandem.errors import RemoteHdfsError
from tandem.gateway.context import PlanContext, is_gateway_temp, temp_name
from tandem.gateway.sides import Side
from tandem.hdfs.client import Hdfs

log = logging.getLogger(__name__)


def check_tree_stays_routed(ctx: PlanContext, holders: list[Side[Hdfs]], src: str, dst: str) -> None:
    """Refuse a directory rename that would leave files off their new names' primaries. Reads
    the tree on every holder (one LISTSTATUS per directory); changes nothing."""
    stranded: dict[tuple[str, str], int] = {}
    example = ""
    for side in holders:
        for entry in side.store.walk(src):
            if entry.status.is_dir or is_gateway_temp(posixpath.basename(entry.relpath)):
                continue
            new = posixpath.join(dst, entry.relpath)
            owner = ctx.routes.route(new)
            if owner != side.name:
                stranded[side.name, owner] = stranded.get((side.name, owner), 0) + 1
                example = example or f"{posixpath.join(src, entry.relpath)} -> {new}"
    if stranded:
        where = "; ".join(f"{n} on {a} would be routed to {b}" for (a, b), n in sorted(stranded.items()))
        raise RemoteHdfsError(
            f"Rename of {src} to {dst} is not allowed: files under it would stay on a primary "
            f"their new names are not routed to ({where}; e.g. {example}). Plan {ctx.plan.plan} "
            "routes each file by a hash of its whole path, and its primaries act as the subclusters "
            "of a Router HASH mount, which refuses renames across subclusters: rename the files one "
            "by one (each moves to its new primary) or copy the tree",
            exception="IOException",
        )


def check_rename_on_standby(ctx: PlanContext, routed: Side[Hdfs], src: str, dst: str) -> None:
    """While ``src``'s primary is down only a file that stays on that primary is renamed (on
    the standby, pending-store for the primary): a directory may have files on other primaries
    and a file moving to another primary needs its bytes from the one that is down."""
    standby = ctx.standby
    held = standby.store.status(standby.local(src))
    if held is None:
        return  # nothing to rename: HDFS answers false
    if held.is_dir or ctx.routes.route(dst) != routed.name:
        raise RemoteHdfsError(
            f"{routed.name}, which holds {src}, is down: renaming "
            f"{'a directory' if held.is_dir else 'it to a name routed to another primary'} "
            "waits for it; retry later",
            exception="RetriableException",
        )


def move_file(holder: Side[Hdfs], target: Side[Hdfs], src: str, dst: str, user: str) -> bool:
    """A file renamed to a name another primary owns moves there (copy, publish, delete). Not
    atomic across primaries: a crash between publish and delete leaves both names, never neither."""
    if target.as_user(user).status(dst) is not None:
        raise RemoteHdfsError(f"{dst} already exists", exception="FileAlreadyExistsException")
    tmp = temp_name(dst)
    with holder.store.open(src) as chunks:
        target.as_user(user).write(tmp, chunks, overwrite=True)
    target.as_user(user).rename(tmp, dst)
    holder.as_user(user).delete(src)
    log.info("%s moved from %s to %s (renamed to %s)", src, holder.name, target.name, dst)
    return True
