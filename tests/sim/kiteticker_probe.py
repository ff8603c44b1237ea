"""Run the official KiteTicker against a ticker URL and print what it sees, one JSON per line.

Used by test_kiteticker.py in a subprocess: Twisted's reactor cannot be
restarted inside one process. Usage:
    python kiteticker_probe.py WS_URL API_KEY ACCESS_TOKEN LTP_TOKEN QUOTE_TOKEN FULL_TOKEN...
"""

from __future__ import annotations

import json
import sys
from typing import Any

from kiteconnect import KiteTicker


def emit(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, **data}, default=str), flush=True)


def main(argv: list[str]) -> None:
    root, api_key, access_token = argv[:3]
    ltp, quote, *full = (int(t) for t in argv[3:])
    ticker = KiteTicker(api_key, access_token, root=root, reconnect_max_tries=1)

    def on_connect(ws: KiteTicker, response: Any) -> None:
        ws.subscribe([ltp, quote, *full])
        ws.set_mode(ws.MODE_LTP, [ltp])
        ws.set_mode(ws.MODE_QUOTE, [quote])
        ws.set_mode(ws.MODE_FULL, full)
        emit("connect")

    ticker.on_connect = on_connect
    ticker.on_ticks = lambda ws, ticks: emit("ticks", ticks=ticks)
    ticker.on_order_update = lambda ws, data: emit("order", data=data)
    ticker.on_error = lambda ws, code, reason: emit("error", code=code, reason=str(reason))
    ticker.on_close = lambda ws, code, reason: emit("close", code=code, reason=str(reason))
    ticker.connect()


if __name__ == "__main__":
    main(sys.argv[1:])
