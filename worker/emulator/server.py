"""A local exchange speaking Binance spot's public protocol, for tests and the demo.

REST (what ccxt calls):
  GET  /api/v3/exchangeInfo          markets
  GET  /api/v3/depth?symbol=&limit=  order-book snapshot with ``lastUpdateId``
  GET  /api/v3/ping, /api/v3/time
Websocket, on any ``/stream/ws/<n>`` (also ``/stream``, ``/ws``, ``/ws/<n>``):
  ``{"method": "SUBSCRIBE", "params": [...], "id": n}`` -> ``{"result": null, "id": n}``
Control (tests, demo):
  POST /_control/fault   {"kind": "disconnect" | "stall" | "gap" | "duplicate" | "malformed",
                          "stream": "trade"|"depth"|"kline"|"ticker"|null,
                          "symbol": "BTC/USDT"|null, "seconds": 5, "count": 1}
  GET  /_control/sent?type=trades|orderbook|ohlcv|ticker   what reached a client
  POST /_control/sent/clear
  POST /_control/pause, /_control/resume   stop / restart the feed (connections stay)
  GET  /_control/stats   frame counters, connections, subscribed streams
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from worker.emulator.feed import Feed, capture_market_ids, first_update_ids, load_capture
from worker.emulator.hub import Connection, Hub
from worker.emulator.market import SymbolState, now_ms, symbol_names

QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH")


@dataclass(frozen=True)
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0
    symbols: int = 3
    rate_hz: float = 5.0  # ticks per second per symbol; 0: trades only, flat out
    seed: int = 1
    replay: Path | None = None
    replay_speed: float = 1.0
    replay_delay_s: float = 1.0  # after the first subscription
    sent_log_max: int = 200_000  # per data type; bounds the emulator's memory


def _split(market_id: str) -> tuple[str, str]:
    for quote in QUOTES:
        if market_id.endswith(quote) and len(market_id) > len(quote):
            return market_id[: -len(quote)], quote
    raise ValueError(f"cannot split market id {market_id!r}")


def _filters() -> list[dict[str, Any]]:
    return [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": "0.01",
            "maxPrice": "10000000.00",
            "tickSize": "0.01",
        },
        {
            "filterType": "LOT_SIZE",
            "minQty": "0.000001",
            "maxQty": "9000.0",
            "stepSize": "0.000001",
        },
        {"filterType": "NOTIONAL", "minNotional": "5.0", "maxNotional": "9000000.0"},
    ]


def market_info(state: SymbolState) -> dict[str, Any]:
    """One ``exchangeInfo`` symbol entry, as Binance spot lists it."""
    return {
        "symbol": state.market_id,
        "status": "TRADING",
        "baseAsset": state.base,
        "baseAssetPrecision": 8,
        "quoteAsset": state.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": _filters(),
        "permissions": [],
        "permissionSets": [["SPOT"]],
    }


class Emulator:
    """The emulator server; ``start()`` returns the bound port."""

    def __init__(self, cfg: EmulatorConfig) -> None:
        self.cfg = cfg
        self.hub = Hub(cfg.sent_log_max)
        self._frames = load_capture(cfg.replay) if cfg.replay else []
        self.feed = Feed(self.hub, self._make_symbols())
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = cfg.port

    @property
    def rest_url(self) -> str:
        return f"http://{self.cfg.host}:{self.port}/api/v3"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.cfg.host}:{self.port}/stream/ws"

    def ccxt_urls(self) -> dict[str, Any]:
        """The ``urls`` to merge into a ccxt binance object."""
        return {"api": {"public": self.rest_url, "ws": {"spot": self.ws_url}}}

    @property
    def symbols(self) -> list[str]:
        return [s.symbol for s in self.feed.symbols.values()]

    def _make_symbols(self) -> list[SymbolState]:
        if self._frames:
            starts = first_update_ids(self._frames)
            out = []
            for i, mid in enumerate(capture_market_ids(self._frames)):
                base, quote = _split(mid)
                st = SymbolState(base, quote, 100.0, random.Random(self.cfg.seed + i))
                st.bids, st.asks, st.update_id = {}, {}, starts.get(mid, 1000) - 1
                out.append(st)
            return out
        return [
            SymbolState(b, q, 100.0 * (1 + i), random.Random(self.cfg.seed * 7919 + i))
            for i, (b, q) in enumerate(symbol_names(self.cfg.symbols))
        ]

    async def start(self) -> int:
        app = web.Application()
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # bound port (port=0)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._task = asyncio.create_task(self._run_feed(), name="emulator-feed")
        return self.port

    async def _run_feed(self) -> None:
        if self._frames:
            # A capture is short: start it once a client listens (then give the
            # client's other sockets a moment to subscribe too).
            await self.hub.first_subscription.wait()
            await asyncio.sleep(self.cfg.replay_delay_s)
            await self.feed.replay(self._frames, self.cfg.replay_speed)
        else:
            await self.feed.random_walk(self.cfg.rate_hz)

    async def pause(self) -> None:
        """Stop sending market data (connections and subscriptions stay)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def resume(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run_feed(), name="emulator-feed")

    async def stop(self) -> None:
        await self.pause()
        for conn in list(self.hub.conns):
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/api/v3/exchangeInfo", self._exchange_info)
        r.add_get("/api/v3/depth", self._depth)
        r.add_get("/api/v3/ping", self._ping)
        r.add_get("/api/v3/time", self._time)
        for path in ("/stream", "/stream/ws", "/stream/ws/{n}", "/ws", "/ws/{n}"):
            r.add_get(path, self._ws)
        r.add_post("/_control/fault", self._fault)
        r.add_get("/_control/sent", self._sent)
        r.add_post("/_control/sent/clear", self._clear_sent)
        r.add_get("/_control/stats", self._stats)
        r.add_post("/_control/pause", self._pause)
        r.add_post("/_control/resume", self._resume)

    async def _ping(self, _: web.Request) -> web.Response:
        return _json({})

    async def _time(self, _: web.Request) -> web.Response:
        return _json({"serverTime": now_ms()})

    async def _pause(self, _: web.Request) -> web.Response:
        await self.pause()
        return _json({"paused": True})

    async def _resume(self, _: web.Request) -> web.Response:
        self.resume()
        return _json({"paused": False})

    async def _stats(self, _: web.Request) -> web.Response:
        return _json(self.hub.snapshot_stats())

    async def _exchange_info(self, _: web.Request) -> web.Response:
        self.hub.stats["exchange_info_requests"] += 1
        symbols = [market_info(s) for s in self.feed.symbols.values()]
        body = {"timezone": "UTC", "serverTime": now_ms(), "rateLimits": [], "symbols": symbols}
        return _json(body)

    async def _depth(self, request: web.Request) -> web.Response:
        state = self.feed.symbols.get(request.query.get("symbol", ""))
        if state is None:
            return _json({"code": -1121, "msg": "Invalid symbol."}, status=400)
        self.hub.stats["depth_snapshots"] += 1
        return _json(state.depth_snapshot(int(request.query.get("limit", "100"))))

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = Connection(ws)
        self.hub.conns.add(conn)
        self.hub.stats["connections_total"] += 1
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_request(conn, msg.data)
        finally:
            self.hub.unsubscribe(conn)
            self.hub.conns.discard(conn)
        return ws

    async def _on_request(self, conn: Connection, text: str) -> None:
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        method, params, rid = req.get("method"), req.get("params") or [], req.get("id")
        if method == "SUBSCRIBE":
            self.hub.subscribe(conn, [str(p) for p in params])
            await conn.ws.send_str(orjson.dumps({"result": None, "id": rid}).decode())
        elif method == "UNSUBSCRIBE":
            self.hub.unsubscribe(conn, [str(p) for p in params])
            await conn.ws.send_str(orjson.dumps({"result": None, "id": rid}).decode())
        elif method == "LIST_SUBSCRIPTIONS":
            await conn.ws.send_str(
                orjson.dumps({"result": sorted(conn.streams), "id": rid}).decode()
            )

    async def _fault(self, request: web.Request) -> web.Response:
        body = await request.json()
        return _json(await self.apply_fault(body))

    async def apply_fault(self, body: dict[str, Any]) -> dict[str, Any]:
        """Inject one fault (see the module docstring); returns what it hit."""
        kind, stream = body.get("kind"), body.get("stream")
        count = int(body.get("count", 1))
        if kind == "disconnect":
            return {"connections": await self.hub.disconnect(stream)}
        if kind == "stall":
            return {"connections": self.hub.stall(float(body.get("seconds", 5)), stream)}
        if kind == "gap":
            hit = [s for s in self.feed.symbols.values() if body.get("symbol") in (None, s.symbol)]
            for s in hit:
                s.pending_gap = max(count, 1) * 5
            return {"symbols": [s.symbol for s in hit]}
        if kind in ("duplicate", "malformed"):
            target = self.hub.duplicate_next if kind == "duplicate" else self.hub.malformed_next
            target[stream or "trade"] += count
            return {"pending": count}
        raise web.HTTPBadRequest(text=f"unknown fault kind {kind!r}")

    async def _sent(self, request: web.Request) -> web.Response:
        return _json(self.hub.sent.get(request.query.get("type", "trades")))

    async def _clear_sent(self, _: web.Request) -> web.Response:
        self.hub.sent.clear()
        return _json({})


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
