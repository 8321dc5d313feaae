"""Adding a concept with one photo through the HTTP API against the CLI's own `remember`, in the same run.

Both sides use the default embedder, loaded once, and each call adds a new concept with the same photo to its
own memory: the API side is the whole request (multipart upload over loopback, checks, a private temporary
file, the memory's remember, the JSON answer); the CLI side is Memory.remember as `edge-rap remember` calls it
(its start-up and model loading left out, as the server pays them once). Calls alternate (tools/timing.py), so that a
shared machine's slow spells fall on both; the photos cycle through the sample photos on each side alike. Prints JSON:
the medians and the API's cost beyond remember.

    python tools/bench_serve.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import sys
import tempfile
from pathlib import Path

import httpx

from edge_rap.config import load_settings
from edge_rap.household import Household
from edge_rap.serve.app import create_app
from edge_rap.serve.server import start_server_thread
from edge_rap.serve.token import TOKEN_FILE
from timing import interleaved_median_ms


def photos(folder: Path) -> list[Path]:
    """The real sample photos (scikit-image, matplotlib) as JPEG files, as a phone or laptop would send them."""
    from PIL import Image

    from edge_rap.export.calibrate import sample_photo_bank

    paths = []
    for name, pixels in sorted(sample_photo_bank().items()):
        if name in ("astronaut", "grace_hopper"):
            continue  # people: a person's photo registers a face too, with its own cost
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=92)
        path = folder / f"{name}.jpg"
        path.write_bytes(out.getvalue())
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--repeat", type=int, default=15, help="concepts added on each side (after 2 warm-ups)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        bank = photos(work)
        api_home = Household(load_settings(memory=str(work / "api")), prepare=True)
        cli_home = Household(load_settings(memory=str(work / "cli")), prepare=True)
        api_home.memory, cli_home.memory  # the model loaded on both sides before timing
        server = start_server_thread(create_app(api_home), "127.0.0.1", 0)
        token = (work / "api" / TOKEN_FILE).read_text().strip()
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        api_count, cli_count = itertools.count(), itertools.count()  # the same photos in the same order

        def api() -> None:
            k = next(api_count)
            photo = bank[k % len(bank)]
            r = client.post("/api/concepts", data={"name": f"c{k}"},
                            files=[("photo", (photo.name, photo.read_bytes(), "image/jpeg"))])
            assert r.status_code == 201, r.text

        def cli() -> None:
            k = next(cli_count)
            cli_home.memory.remember(f"c{k}", [bank[k % len(bank)]])

        try:
            api_ms, cli_ms = interleaved_median_ms(api, cli, args.repeat)
        finally:
            client.close()
            server.stop()
            api_home.close()
            cli_home.close()
    print(json.dumps({"repeat": args.repeat, "photos": len(bank), "api_add_ms": round(api_ms, 1),
                      "cli_remember_ms": round(cli_ms, 1), "api_beyond_remember_ms": round(api_ms - cli_ms, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
