"""Compact pending marks: the fields carried in the id (an empty directory on a cluster), read
back without a request; a mark whose fields do not fit in a file name stays a plain id. Temporary
names within HDFS's limit on a name; which racing changes' order matters."""

from __future__ import annotations

import posixpath

from tandem.gateway.marks import MAX_NAME, TEMP_PREFIX, Mark, id_time_ms, is_compact, temp_name
from tandem.gateway.settle import touches


def test_a_compact_id_carries_the_mark() -> None:
    mark = Mark.new_compact("write", ("/events/day=1/part-0007.json",), "primary2", "web", with_temp=True)
    assert is_compact(mark.id) and len(mark.id.encode()) <= MAX_NAME
    assert "/" not in mark.id
    assert mark.temp is not None
    parent, name = posixpath.split(mark.temp)
    assert parent == "/events/day=1" and name.startswith(TEMP_PREFIX) and name.endswith(".part-0007.json")
    back = Mark.from_id(mark.id)
    assert (back.op, back.paths, back.primary, back.user, back.temp) == (
        "write",
        mark.paths,
        "primary2",
        "web",
        mark.temp,
    )
    assert back.written_at_ms == id_time_ms(mark.id) == mark.written_at_ms


def test_a_rename_mark_keeps_both_paths_and_no_temp() -> None:
    mark = Mark.new_compact("rename", ("/a/src", "/a/dst"), "primary", "etl")
    back = Mark.from_id(mark.id)
    assert back.paths == ("/a/src", "/a/dst") and back.temp is None and back.op == "rename"


def test_fields_too_long_for_a_name_give_a_plain_id_and_a_file_mark() -> None:
    deep = "/" + "/".join(["segment-of-a-long-path"] * 12)
    mark = Mark.new_compact("write", (deep,), "primary", "web", with_temp=True)
    assert not is_compact(mark.id)
    assert mark.temp is not None and posixpath.dirname(mark.temp) == posixpath.dirname(deep)
    assert Mark.from_bytes(mark.to_bytes()) == mark  # stored as a file, read back whole
    assert id_time_ms(mark.id) == mark.written_at_ms  # ids sort by time, whatever their form


def test_a_temporary_name_stays_within_hdfs_limit_on_a_name() -> None:
    """HDFS refuses a name longer than 255 UTF-8 bytes (``max-component-length``): a file whose
    own name is near the limit still gets a temporary name beside it, unique by its tag."""
    name = "é" * 120 + "x.bin"  # 245 bytes
    first, second = temp_name(f"/d/{name}", "a" * 12), temp_name(f"/d/{name}", "b" * 12)
    for temp in (first, second):
        assert posixpath.dirname(temp) == "/d"
        assert len(posixpath.basename(temp).encode()) <= MAX_NAME
        assert posixpath.basename(temp).encode().decode() == posixpath.basename(temp)  # whole characters
    assert first != second
    assert temp_name("/d/short.bin", "c" * 12) == f"/d/{TEMP_PREFIX}{'c' * 12}.short.bin"


def test_racing_changes_touch_when_their_order_can_matter() -> None:
    def mark(op: str, *paths: str) -> Mark:
        return Mark.new_compact(op, paths, "primary", "web")

    write = mark("write", "/d/a.bin")
    assert touches(write, mark("write", "/d/a.bin"))  # the same path
    assert touches(write, mark("delete", "/d"))  # a tree removed above it
    assert touches(mark("rename", "/d", "/e"), write)  # a tree moved above it
    assert touches(write, mark("rename", "/x/b.bin", "/d/a.bin"))  # a file renamed onto it
    assert not touches(write, mark("write", "/d/b.bin"))  # a sibling
    assert not touches(write, mark("mkdirs", "/d"))  # a parent made again changes nothing below it
    assert not touches(mark("delete", "/d/a"), mark("delete", "/d/ab"))  # a name prefix is no parent


def test_a_settle_mark_names_the_outermost_paths_of_the_racing_changes() -> None:
    """Replaying a path settles the whole tree there: paths below another are left out (a
    directory rename with forty pending children is a mark of two paths, not forty-two)."""
    from tandem.gateway.settle import _outermost

    children = [f"/stage/part-{i}" for i in range(40)]
    assert _outermost(["/stage", "/final", *children]) == ("/stage", "/final")
    assert _outermost(["/d/a", "/d/ab", "/d/a"]) == ("/d/a", "/d/ab")  # a name prefix is no parent
