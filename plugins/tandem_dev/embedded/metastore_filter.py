"""The partition filter language of ``get_partitions_by_filter`` (pure: parse, then evaluate).

The grammar is Hive's ``Filter.g``: comparisons ``key op literal`` or ``literal op key`` with
``= <> != < <= > >= LIKE``, ``key [NOT] BETWEEN lit AND lit``, ``(key) [NOT] IN (lit, ...)``,
``AND``/``OR`` (``AND`` binds tighter) and parentheses; keywords are case-insensitive. Literals
are quoted strings (quotes stripped, backslashes kept, as ``TrimQuotes`` does), integers, and
bare ``yyyy-mm-dd`` dates.

Typing follows the metastore: string keys compare as strings (a date literal as its
``yyyy-mm-dd`` text), integral keys against integer literals numerically, date keys against
dates; any other pairing is refused, as Hive refuses it, with "Filtering is supported only on
partition keys of type string". ``LIKE`` takes a regular expression matched against the whole
value (Hive hands it to JDOQL ``matches``).
"""

from __future__ import annotations

import datetime
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Value = str | int | datetime.date
Predicate = Callable[[Sequence[str]], bool]


class FilterError(ValueError):
    """The filter cannot be parsed or applied to this table (MetaException on the wire)."""


@dataclass(frozen=True)
class Comparison:
    key: str
    op: str  # = <> < <= > >= LIKE, always read as "key op value"
    value: Value


@dataclass(frozen=True)
class Junction:
    op: Literal["AND", "OR"]
    left: Node
    right: Node


Node = Comparison | Junction

_KEYWORDS = frozenset({"AND", "OR", "NOT", "BETWEEN", "LIKE", "IN"})
_OPERATORS = ("<=", ">=", "<>", "!=", "=", "<", ">")
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.DOTALL)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INT = re.compile(r"-?\d+")
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]*")
_REVERSED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "<>": "<>"}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_STRING_TYPES = re.compile(r"string|varchar\(\s*\d+\s*\)|char\(\s*\d+\s*\)")
_INTEGRAL_TYPES = frozenset({"tinyint", "smallint", "int", "integer", "bigint"})
_TYPE_REFUSED = "Filtering is supported only on partition keys of type string"


@dataclass(frozen=True)
class _Token:
    kind: str  # ( ) OP STRING DATE INT IDENT AND OR NOT BETWEEN LIKE END
    text: str
    value: Value | None = None


def _parse_date(text: str) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


def _literal_token(text: str, pos: int) -> _Token | None:
    """Longest of date / integer / identifier at ``pos``; ties go to the earlier rule, as ANTLR."""
    candidates: list[_Token] = []
    date_match = _DATE.match(text, pos)
    if date_match and (day := _parse_date(date_match.group())) is not None:
        candidates.append(_Token("DATE", date_match.group(), day))
    int_match = _INT.match(text, pos)
    if int_match:
        candidates.append(_Token("INT", int_match.group(), int(int_match.group())))
    ident_match = _IDENT.match(text, pos)
    if ident_match:
        word = ident_match.group()
        kind = word.upper() if word.upper() in _KEYWORDS else "IDENT"
        candidates.append(_Token(kind, word))
    if not candidates:
        return None
    return max(candidates, key=lambda t: len(t.text))  # max keeps the first of equals


def tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char in " \t\r\n":
            pos += 1
            continue
        if char in "(),":
            tokens.append(_Token(char, char))
            pos += 1
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, pos)), None)
        if op is not None:
            tokens.append(_Token("OP", "<>" if op == "!=" else op))
            pos += len(op)
            continue
        string_match = _STRING.match(text, pos)
        if string_match:
            raw = string_match.group()
            tokens.append(_Token("STRING", raw, raw[1:-1]))
            pos = string_match.end()
            continue
        token = _literal_token(text, pos)
        if token is None:
            raise FilterError(f"Error parsing partition filter; lexer error: unexpected {char!r} at {pos}")
        tokens.append(token)
        pos += len(token.text)
    tokens.append(_Token("END", ""))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def take(self, *kinds: str) -> _Token:
        token = self.peek()
        if token.kind not in kinds:
            shown = token.text or "end of filter"
            raise FilterError(f"Error parsing partition filter: expected {' or '.join(kinds)}, got {shown!r}")
        self.pos += 1
        return token

    def filter(self) -> Node:
        node = self.or_expression()
        self.take("END")
        return node

    def or_expression(self) -> Node:
        node = self.and_expression()
        while self.peek().kind == "OR":
            self.take("OR")
            node = Junction("OR", node, self.and_expression())
        return node

    def and_expression(self) -> Node:
        node = self.expression()
        while self.peek().kind == "AND":
            self.take("AND")
            node = Junction("AND", node, self.expression())
        return node

    def _in_follows(self, at: int) -> bool:
        return self.peek(at).kind == "IN" or (self.peek(at).kind == "NOT" and self.peek(at + 1).kind == "IN")

    def expression(self) -> Node:
        parenthesized_key = (
            self.peek().kind == "(" and self.peek(1).kind == "IDENT" and self.peek(2).kind == ")"
        )
        if (parenthesized_key and self._in_follows(3)) or (
            self.peek().kind == "IDENT" and self._in_follows(1)
        ):
            return self.in_list()
        if self.peek().kind == "(":
            self.take("(")
            node = self.or_expression()
            self.take(")")
            return node
        if self.peek().kind == "IDENT" and (
            self.peek(1).kind == "BETWEEN" or (self.peek(1).kind == "NOT" and self.peek(2).kind == "BETWEEN")
        ):
            return self.between()
        return self.comparison()

    def literal(self) -> _Token:
        return self.take("STRING", "INT", "DATE")

    def operator(self) -> str:
        token = self.take("OP", "LIKE")
        return "LIKE" if token.kind == "LIKE" else token.text

    def comparison(self) -> Comparison:
        if self.peek().kind == "IDENT":
            key = self.take("IDENT").text
            op = self.operator()
            value = self.literal().value
        else:
            value = self.literal().value
            op = self.operator()
            key = self.take("IDENT").text
            if op == "LIKE":
                raise FilterError(f"Value should be on the RHS for LIKE operator : Key <{key}>")
            op = _REVERSED[op]
        assert value is not None
        return Comparison(key, op, value)

    def in_list(self) -> Node:
        """``(key) [NOT] IN (lit, ...)`` (Filter.g's inExpression; the key's parentheses may be
        left out): equal to one of the values, or (NOT) to none."""
        parenthesized = self.peek().kind == "("
        if parenthesized:
            self.take("(")
        key = self.take("IDENT").text
        if parenthesized:
            self.take(")")
        positive = self.peek().kind != "NOT"
        if not positive:
            self.take("NOT")
        self.take("IN")
        self.take("(")
        values = [self.literal()]
        while self.peek().kind == ",":
            self.take(",")
            values.append(self.literal())
        self.take(")")
        if len({v.kind for v in values}) > 1:
            raise FilterError("Error parsing partition filter: IN values must be of one type")
        leaves = [Comparison(key, "=" if positive else "<>", v.value) for v in values if v.value is not None]
        node: Node = leaves[0]
        for leaf in leaves[1:]:
            node = Junction("OR" if positive else "AND", node, leaf)
        return node

    def between(self) -> Node:
        key = self.take("IDENT").text
        positive = self.peek().kind != "NOT"
        if not positive:
            self.take("NOT")
        self.take("BETWEEN")
        low = self.literal()
        self.take("AND")
        high = self.literal()
        if low.kind != high.kind:
            raise FilterError("Error parsing partition filter: BETWEEN bounds must be of one type")
        assert low.value is not None and high.value is not None
        if positive:
            return Junction("AND", Comparison(key, ">=", low.value), Comparison(key, "<=", high.value))
        return Junction("OR", Comparison(key, "<", low.value), Comparison(key, ">", high.value))


def parse_filter(text: str | None) -> Node | None:
    """The filter's tree, or None for an empty filter (which selects every partition)."""
    if text is None or not text.strip():
        return None
    return _Parser(text).filter()


def _to_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _type_kind(col_type: str | None) -> str | None:
    name = (col_type or "").strip().lower()
    if _STRING_TYPES.fullmatch(name):
        return "string"
    if name in _INTEGRAL_TYPES:
        return "integral"
    if name == "date":
        return "date"
    return None


def _coerce(kind: str | None, value: Value) -> tuple[Callable[[str], object], object]:
    """How to read a partition value of this key type, and the literal in that type."""
    if kind == "string" and not isinstance(value, int):
        return str, value.isoformat() if isinstance(value, datetime.date) else value
    if kind == "integral" and isinstance(value, int):
        return _to_int, value
    if kind == "date" and not isinstance(value, int):
        day = value if isinstance(value, datetime.date) else _parse_date(value)
        if day is not None:
            return _parse_date, day
    raise FilterError(_TYPE_REFUSED)


def _compile_comparison(leaf: Comparison, keys: Sequence[tuple[str, str | None]]) -> Predicate:
    index = next((i for i, (name, _) in enumerate(keys) if name.lower() == leaf.key.lower()), None)
    if index is None:
        raise FilterError(f"Specified key <{leaf.key}> is not a partitioning key for the table")
    kind = _type_kind(keys[index][1])
    if leaf.op == "LIKE":
        if kind != "string" or not isinstance(leaf.value, str):
            raise FilterError(_TYPE_REFUSED)
        try:
            regex = re.compile(leaf.value)
        except re.error as exc:
            raise FilterError(f"Error parsing partition filter: bad LIKE pattern: {exc}") from exc
        return lambda values: regex.fullmatch(values[index]) is not None
    read, literal = _coerce(kind, leaf.value)
    compare = _COMPARE[leaf.op]

    def predicate(values: Sequence[str]) -> bool:
        current = read(values[index])
        return current is not None and bool(compare(current, literal))

    return predicate


def compile_filter(node: Node | None, keys: Sequence[tuple[str, str | None]]) -> Predicate:
    """A predicate over a partition's values; ``keys`` are the table's (name, type) in order.

    Raises :class:`FilterError` for unknown keys and refused types even when the table has
    no partitions, as the metastore does when it plans the query.
    """
    if node is None:
        return lambda values: True
    if isinstance(node, Comparison):
        return _compile_comparison(node, keys)
    left = compile_filter(node.left, keys)
    right = compile_filter(node.right, keys)
    if node.op == "AND":
        return lambda values: left(values) and right(values)
    return lambda values: left(values) or right(values)
