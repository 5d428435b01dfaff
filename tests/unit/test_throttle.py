"""The copy engine's bandwidth limit, on an injected clock: bytes take their size over the rate,
however the copy threads interleave."""

from __future__ import annotations

import pytest

from tandem.copy.webhdfs import Throttle
from tandem.policy import format_rate, parse_rate


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_chunks_are_paced_at_the_rate():
    clock = FakeClock()
    throttle = Throttle(1000, clock, clock.sleep)
    sent = list(throttle.pace([b"x" * 500] * 10))
    assert len(sent) == 10
    # the first chunk goes at once; the 5,000 bytes end 5 s after the start at 1,000 B/s
    assert clock.now == pytest.approx(104.5)
    assert sum(clock.slept) == pytest.approx(4.5)


def test_threads_share_one_link():
    clock = FakeClock()
    throttle = Throttle(2000, clock, clock.sleep)
    # two threads each ask for a slot before either sleeps: the second waits for the first's
    starts = []
    for _ in range(4):
        before = clock.now
        throttle.wait(1000)
        starts.append(clock.now - before)
    assert starts == pytest.approx([0.0, 0.5, 0.5, 0.5])


def test_an_idle_link_does_not_bank_credit():
    clock = FakeClock()
    throttle = Throttle(1000, clock, clock.sleep)
    throttle.wait(1000)
    clock.now += 60  # idle for a minute
    throttle.wait(1000)
    throttle.wait(1000)
    assert clock.slept == pytest.approx([1.0])  # the burst after idling is one chunk, not 60 s worth


def test_rates_are_read_and_written_back():
    assert parse_rate("100MB/s") == 100_000_000
    assert parse_rate("1.5GiB/s") == int(1.5 * (1 << 30))
    assert parse_rate("800 KB/s") == 800_000
    assert format_rate(parse_rate("100MB/s")) == "100MB/s"
    for bad in ("fast", "100MB", "0MB/s", "-5MB/s"):
        with pytest.raises(ValueError, match="rate"):
            parse_rate(bad)
