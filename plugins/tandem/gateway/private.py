"""Which files hold private data: words, recognisers and images, decided on a file's first MiB.

Everything runs offline, with no model: words are matched case-insensitively in text; the
built-in recognisers are regular expressions checked by the format's own checksum where it has
one (Luhn for card numbers, ISO 7064 MOD 11-2 for Chinese resident ID numbers), so a random
digit run is not taken for a card; any other pattern a plan names is a regular expression.
Images are recognised by their signature (the ``filetype`` package), whatever their name, and
always count as private.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date

import filetype

HEAD = 1 << 20

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: str) -> bool:
    digits = re.sub(r"[ -]", "", match)
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _id_card_cn(match: str) -> bool:
    body, check = match[:17], match[17].upper()
    try:
        date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError:
        return False
    return _ID_CHECK[sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS, strict=True)) % 11] == check


@dataclass(frozen=True)
class Recogniser:
    name: str
    regex: re.Pattern[str]
    valid: Callable[[str], bool] = lambda _: True

    def find(self, text: str) -> bool:
        return any(self.valid(m.group(0)) for m in self.regex.finditer(text))


BUILT_IN = {
    "id_card_cn": Recogniser(
        "id_card_cn",
        re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{9}[\dXx](?![0-9A-Za-z])"),
        _id_card_cn,
    ),
    "phone_cn": Recogniser("phone_cn", re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d{9}(?!\d)")),
    "email": Recogniser(
        "email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
    ),
    "credit_card": Recogniser("credit_card", re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)"), _card),
}


def recogniser(pattern: str) -> Recogniser:
    """A built-in recogniser by name, or ``pattern`` as a regular expression (re.error if bad)."""
    return BUILT_IN.get(pattern) or Recogniser(pattern, re.compile(pattern))


@dataclass(frozen=True)
class Detector:
    """A plan's rules; :meth:`why` says why a file's first bytes make it private, or None."""

    words: tuple[str, ...] = ()
    recognisers: tuple[Recogniser, ...] = ()
    images: bool = True

    @classmethod
    def build(cls, words: Iterable[str], patterns: Iterable[str], images: bool) -> Detector:
        return cls(tuple(w.casefold() for w in words), tuple(recogniser(p) for p in patterns), images)

    def why(self, head: bytes) -> str | None:
        if self.images:
            kind = filetype.guess(head)
            if kind is not None and kind.mime.startswith("image/"):
                return f"an image ({kind.mime})"
        text = _as_text(head)
        if text is None:
            return None  # binary, not text: only images are recognised there
        folded = text.casefold()
        for word in self.words:
            if word in folded:
                return f"the word {word!r}"
        for rule in self.recognisers:
            if rule.find(text):
                return f"a match of {rule.name}"
        return None


def _as_text(head: bytes) -> str | None:
    """The text a file's first bytes hold: UTF-16 (with its byte-order mark, as Excel's "Unicode
    text" and Windows tools write it, or without one when every other byte is NUL), else UTF-8;
    None for binary data (NUL bytes otherwise)."""
    sample = head[:8192]
    if sample[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return sample.decode("utf-16", errors="ignore")
    if b"\x00" not in sample:
        return sample.decode("utf-8", errors="ignore")
    even, odd = sample[0::2], sample[1::2]
    for zeros, encoding in ((odd, "utf-16-le"), (even, "utf-16-be")):
        if len(zeros) > 8 and zeros.count(0) >= 0.9 * len(zeros):
            return sample[: len(sample) // 2 * 2].decode(encoding, errors="ignore")
    return None


def peek(chunks: Iterable[bytes], size: int = HEAD) -> tuple[bytes, Iterator[bytes]]:
    """The first ``size`` bytes of a stream (fewer if it is shorter), and the whole stream again."""
    source = iter(chunks)
    head = bytearray()
    for chunk in source:
        head += chunk
        if len(head) >= size:
            break
    first = bytes(head)

    def again() -> Iterator[bytes]:
        if first:
            yield first
        yield from source

    return first[:size], again()
