"""Compact pending marks: the fields carried in the id (an empty directory on a cluster), read
back without a request; a mark whose fields do not fit in a file name stays a plain id."""

from __future__ import annotations

import posixpath

from tandem.gateway.marks import MAX_NAME, TEMP_PREFIX, Mark, id_time_ms, is_compact


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
