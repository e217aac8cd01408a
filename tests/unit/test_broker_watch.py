"""BrokerWatch: an outage is logged once, repeated at most every log_every_s, counted, ended."""

from __future__ import annotations

from structlog.testing import capture_logs

from worker.bus.broker_watch import BrokerWatch
from worker.metrics import KAFKA_BROKER_REACHABLE, KAFKA_BROKER_UNREACHABLE_SECONDS


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def down_seconds(client: str) -> float:
    return KAFKA_BROKER_UNREACHABLE_SECONDS.labels(client)._value.get()  # type: ignore[no-any-return]  # test peek


def reachable(client: str) -> float:
    return KAFKA_BROKER_REACHABLE.labels(client)._value.get()  # type: ignore[no-any-return]  # test peek


def test_outage_is_announced_rate_limited_counted_and_ended() -> None:
    clock, client = Clock(), "unit-outage"
    watch = BrokerWatch(client, unreachable_after_s=10, log_every_s=30, clock=clock)
    with capture_logs() as logs:
        watch.ok()
        assert reachable(client) == 1
        for _ in range(95):  # a failure every second for 95 s
            watch.failed(ConnectionError("refused"))
            clock.now += 1
        watch.ok()
    events = [(e["event"], e.get("down_s")) for e in logs]
    assert events == [
        ("broker_unreachable", 10.0),
        ("broker_unreachable", 40.0),
        ("broker_unreachable", 70.0),
        ("broker_reachable", 95.0),
    ]
    assert logs[0]["client"] == client
    assert logs[0]["error"] == "ConnectionError"
    assert down_seconds(client) == 95.0
    assert reachable(client) == 1


def test_short_failures_and_silence_are_not_outages() -> None:
    clock, client = Clock(), "unit-short"
    watch = BrokerWatch(client, unreachable_after_s=10, clock=clock)
    with capture_logs() as logs:
        for _ in range(3):
            watch.failed("no connection")
            clock.now += 9  # a success within 10 s of the first failure
            watch.ok()
        clock.now += 600  # no requests at all: not an outage
        watch.check()
    assert logs == []
    assert down_seconds(client) == 0


def test_gauge_is_zero_during_an_outage() -> None:
    clock, client = Clock(), "unit-gauge"
    watch = BrokerWatch(client, unreachable_after_s=5, clock=clock)
    watch.failed("no connection")
    clock.now += 6
    watch.check()
    assert reachable(client) == 0
    assert not watch.reachable
