"""How long the household page's first visit holds the device's model lock: every card's thumbnail is made then.

Remembers N concepts, each with its own 12-megapixel JPEG (a phone's photo), serves them, and fetches every card's
thumbnail as a phone's first visit does (`?size=480`, six connections at once, as a browser opens). The API's
locks are timed: each lock `serve/api.py` makes is replaced by one that adds up how long it is held (the model's
is the one held during the visit: the visit writes nothing). Prints JSON.

    python tools/bench_thumbnails.py [--concepts 50]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np


class TimedLock:
    """A lock that adds up the seconds it was held."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.held_s = 0.0
        self._since = 0.0

    def acquire(self, *args) -> bool:
        got = self._lock.acquire(*args)
        if got:
            self._since = time.perf_counter()
        return got

    def release(self) -> None:
        self.held_s += time.perf_counter() - self._since
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def phone_photo(seed: int, folder: Path) -> Path:
    """A 4000x3000 JPEG (12 megapixels), smooth like a photo, different for each seed."""
    from PIL import Image

    small = np.random.default_rng(seed).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(small).resize((4000, 3000), Image.BICUBIC).save(out, "JPEG", quality=90)
    path = folder / f"photo-{seed}.jpg"
    path.write_bytes(out.getvalue())
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--concepts", type=int, default=50)
    parser.add_argument("--size", type=int, default=480, help="the thumbnails' longer side (a 3x phone's cards)")
    args = parser.parse_args()

    from edge_rap.config import load_settings
    from edge_rap.household import Household
    from edge_rap.serve import api
    from edge_rap.serve.app import create_app
    from edge_rap.serve.server import start_server_thread
    from edge_rap.serve.token import TOKEN_FILE

    locks: list[TimedLock] = []

    class Timed:  # what api.py sees as `threading`: its locks timed
        def __getattr__(self, name):
            return getattr(threading, name)

        @staticmethod
        def Lock() -> TimedLock:
            locks.append(TimedLock())
            return locks[-1]

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        home = Household(load_settings(memory=str(work / "memory")), prepare=True)
        for k in range(args.concepts):
            home.memory.remember(f"c{k}", [phone_photo(k, work)])
        api.threading = Timed()
        server = start_server_thread(create_app(home), "127.0.0.1", 0)
        token = (work / "memory" / TOKEN_FILE).read_text().strip()
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120,
                              limits=httpx.Limits(max_connections=6))
        try:
            cards = [p["url"] for c in client.get("/api/concepts").json() for p in c["photos"]]
            before = [lock.held_s for lock in locks]
            started = time.perf_counter()
            with ThreadPoolExecutor(6) as pool:
                statuses = list(pool.map(lambda url: client.get(url, params={"size": args.size}).status_code, cards))
            visit_s = time.perf_counter() - started
            held = max(lock.held_s - b for lock, b in zip(locks, before))
        finally:
            client.close()
            server.stop()
            home.close()
    assert statuses == [200] * len(cards), statuses
    print(json.dumps({"concepts": args.concepts, "thumbnails": len(cards), "size": args.size,
                      "first_visit_s": round(visit_s, 2), "model_lock_held_s": round(held, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
