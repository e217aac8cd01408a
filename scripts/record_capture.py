"""Record Binance combined-stream frames to a JSON-lines capture for `ticklake emulate --replay`.

Usage:
  python scripts/record_capture.py OUT.jsonl [--url URL] [--seconds S] STREAM...

  STREAM: Binance stream names, e.g. btcusdt@trade btcusdt@depth@100ms btcusdt@kline_1s
  --url:  default wss://stream.binance.com:9443/stream (real Binance); point it at
          ws://127.0.0.1:PORT/stream to record the emulator.

Each line is one frame exactly as received: {"stream": "...", "data": {...}}.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import aiohttp
import orjson

BINANCE = "wss://stream.binance.com:9443/stream"


async def record(url: str, streams: list[str], seconds: float, out: Path) -> int:
    n = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        request = {"method": "SUBSCRIBE", "params": streams, "id": 1}
        await ws.send_str(orjson.dumps(request).decode())
        with out.open("wb") as fh:
            while (left := deadline - time.monotonic()) > 0:
                try:
                    msg = await ws.receive(timeout=left)
                except TimeoutError:
                    break
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                frame = orjson.loads(msg.data)
                if "stream" in frame and "data" in frame:
                    fh.write(orjson.dumps(frame) + b"\n")
                    n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("streams", nargs="+")
    parser.add_argument("--url", default=BINANCE)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    n = asyncio.run(record(args.url, args.streams, args.seconds, args.out))
    print(f"{n} frames -> {args.out}")


if __name__ == "__main__":
    main()
