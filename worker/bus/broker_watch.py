"""Whether a Kafka client reaches its brokers, judged by its own requests.

aiokafka retries a dead broker quietly (the sink once logged nothing for
206 s of outage). A :class:`BrokerWatch` wraps one aiokafka client's request
path: a response is a success; a request that cannot be sent (no connection,
refused, timed out) is a failure. The client is **unreachable** once
requests have failed, with no success in between, for
``unreachable_after_s``; one success ends it. A healthy consumer succeeds
every fetch wait (~0.5 s) and heartbeat (3 s), so silence alone -- a long
rebalance, an idle producer -- never counts; only failures do.

On an outage: ``broker_unreachable`` (warning) once, then at most every
``log_every_s`` with ``down_s``; ``broker_reachable`` with the total
``down_s`` when it ends. Metrics: ``ticklake_kafka_broker_reachable{client}``
(1/0) and ``ticklake_kafka_broker_unreachable_seconds_total{client}``.
A multi-broker cluster with one broker down stays "reachable" while others
answer: that shows as lag, not here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)

from worker.logging import get_logger
from worker.metrics import KAFKA_BROKER_REACHABLE, KAFKA_BROKER_UNREACHABLE_SECONDS

log = get_logger("bus.broker")

# What a broker that cannot be reached raises; other errors are answers.
UNREACHABLE_ERRORS = (
    KafkaConnectionError,
    NodeNotReadyError,
    RequestTimedOutError,
    KafkaTimeoutError,
    asyncio.TimeoutError,
    OSError,
)


class BrokerWatch:
    """Outage detection for one Kafka client (see the module docstring)."""

    def __init__(
        self,
        client: str,
        *,
        unreachable_after_s: float = 10.0,
        log_every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._after, self._every, self._clock = unreachable_after_s, log_every_s, clock
        self._failing_since: float | None = None  # first failure since the last success
        self._announced_at: float | None = None  # last broker_unreachable line
        self._counted_to = 0.0  # outage seconds counted up to this clock value
        self._error = ""
        self.reachable = True

    def ok(self) -> None:
        """A request got its response."""
        if self._failing_since is None and self.reachable:
            KAFKA_BROKER_REACHABLE.labels(self.client).set(1)
            return
        now = self._clock()
        if self._announced_at is not None and self._failing_since is not None:
            KAFKA_BROKER_UNREACHABLE_SECONDS.labels(self.client).inc(now - self._counted_to)
            log.warning(
                "broker_reachable", client=self.client, down_s=round(now - self._failing_since, 1)
            )
        self._failing_since = self._announced_at = None
        self.reachable = True
        KAFKA_BROKER_REACHABLE.labels(self.client).set(1)

    def failed(self, error: BaseException | str) -> None:
        """A request could not be sent or answered."""
        self._error = error if isinstance(error, str) else type(error).__name__
        if self._failing_since is None:
            self._failing_since = self._clock()
        self.check()

    def check(self) -> None:
        """Announce an outage, or repeat the announcement; cheap, call it often."""
        since = self._failing_since
        if since is None:
            return
        now = self._clock()
        down = now - since
        if down < self._after:
            return
        if self._announced_at is None:
            self._counted_to = since
        elif now - self._announced_at < self._every:
            self._count(now)
            return
        self._count(now)
        self._announced_at = now
        self.reachable = False
        KAFKA_BROKER_REACHABLE.labels(self.client).set(0)
        log.warning(
            "broker_unreachable", client=self.client, down_s=round(down, 1), error=self._error
        )

    def _count(self, now: float) -> None:
        KAFKA_BROKER_UNREACHABLE_SECONDS.labels(self.client).inc(now - self._counted_to)
        self._counted_to = now

    def attach(self, kafka_client: Any) -> None:
        """Observe an ``AIOKafkaClient``'s requests (``send``, connects, metadata)."""
        send = kafka_client.send
        get_conn = kafka_client._get_conn  # aiokafka has no hook for this
        metadata_update = kafka_client._metadata_update  # idem

        async def watched_send(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await send(*args, **kwargs)
            except UNREACHABLE_ERRORS as exc:
                self.failed(exc)
                raise
            self.ok()
            return result

        async def watched_get_conn(*args: Any, **kwargs: Any) -> Any:
            conn = await get_conn(*args, **kwargs)
            if conn is None:
                self.failed("no connection")
            return conn

        async def watched_metadata_update(*args: Any, **kwargs: Any) -> Any:
            done = await metadata_update(*args, **kwargs)
            if done:
                self.ok()
            else:
                self.failed("metadata request failed")
            return done

        kafka_client.send = watched_send
        kafka_client._get_conn = watched_get_conn
        kafka_client._metadata_update = watched_metadata_update


async def watched(watch: BrokerWatch, call: Awaitable[Any], bootstrap: str) -> Any:
    """Await ``call`` (a client's ``start()``); an unreachable broker is logged at once."""
    try:
        result = await call
    except UNREACHABLE_ERRORS as exc:
        watch.reachable = False
        KAFKA_BROKER_REACHABLE.labels(watch.client).set(0)
        log.warning(
            "broker_unreachable",
            client=watch.client,
            phase="start",
            bootstrap=bootstrap,
            error=type(exc).__name__,
        )
        raise
    watch.ok()
    return result
