"""Helpers for tests of the embedded NameNode's database layout."""

from __future__ import annotations

import sqlite3


def forget_copy_on_write(db: sqlite3.Connection) -> None:
    """Make a namespace database look as written before copy-on-write snapshots."""
    for trigger in ("saved_update", "saved_delete"):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for index in ("inodes_saved_id", "inodes_saved_child"):
        db.execute(f"DROP INDEX IF EXISTS {index}")
    db.execute("ALTER TABLE inodes DROP COLUMN born")
    db.execute("DELETE FROM meta WHERE key='cow_from'")
