"""Path helpers of the planner: absolute and subtree-relative HDFS paths. Pure."""

from __future__ import annotations

import posixpath
import re

# --------------------------------------------------------------------------------------------
# Paths


def _norm_abs(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"{path!r} is not an absolute HDFS path")
    return posixpath.normpath(re.sub("/+", "/", path))


def _norm_rel(path: str) -> str:
    """A snapshot-relative path: no leading ``/`` or ``./``, no trailing ``/``; root is ``""``."""
    cleaned = posixpath.normpath("/" + path.strip()).lstrip("/")
    return cleaned


def _is_under(path: str, ancestor: str) -> bool:
    """Strictly beneath ``ancestor``; relative paths, ``""`` is the root."""
    if ancestor == "":
        return path != ""
    return path.startswith(ancestor + "/")


def _at_or_under(path: str, ancestor: str) -> bool:
    return path == ancestor or _is_under(path, ancestor)


def _abs_under(path: str, ancestor: str) -> bool:
    return path != ancestor and path.startswith(ancestor.rstrip("/") + "/")


def _parts(path: str) -> tuple[str, ...]:
    return tuple(path.split("/")) if path else ()


def _join(base: str, rest: str) -> str:
    return f"{base}/{rest}" if base and rest else base or rest
