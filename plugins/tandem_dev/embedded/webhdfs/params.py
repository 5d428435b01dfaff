"""Query parameters as Hadoop's ``*Param`` classes parse them: errors are Hadoop's
``Invalid value for webhdfs parameter`` IllegalArgumentExceptions (400).
"""

from __future__ import annotations

from urllib.parse import quote

from tandem_dev.embedded.hdfs_exceptions import IllegalArgument
from tandem_dev.embedded.namespace import Parts
from tandem_dev.embedded.webhdfs.protocol import Request, parse_path


def bad_param(name: str, value: str, reason: str) -> IllegalArgument:
    return IllegalArgument(f'Invalid value for webhdfs parameter "{name}": {reason}: "{value}"')


def bool_param(req: Request, name: str, default: bool = False) -> bool:
    value = req.params.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise bad_param(name, value, "Failed to parse to Boolean")


def long_param(
    req: Request, name: str, default: int | None = None, *, minimum: int | None = None
) -> int | None:
    value = req.params.get(name)
    if value is None or value == "" or value.lower() == "null":
        return default
    try:
        number = int(value)
    except ValueError:
        raise bad_param(name, value, "Failed to parse to a number") from None
    if minimum is not None and number < minimum:
        raise bad_param(name, value, f"must be >= {minimum}")
    return number


def required_param(req: Request, name: str) -> str:
    value = req.params.get(name)
    if not value:
        raise IllegalArgument(f'Required param "{name}" for op {req.op} is null or empty')
    return value


def perm_param(req: Request, default: int | None) -> int | None:
    value = req.params.get("permission")
    if value is None or value == "":
        return default
    try:
        mode = int(value, 8)
    except ValueError:
        raise bad_param("permission", value, "not an octal number") from None
    if not 0 <= mode <= 0o1777:
        raise bad_param("permission", value, "outside 0 - 1777")
    return mode


def destination_param(req: Request) -> Parts:
    value = required_param(req, "destination")
    if not value.startswith("/"):
        raise bad_param("destination", value, "not an absolute path")
    return parse_path(quote(value, safe="/"))
