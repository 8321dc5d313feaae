"""Benchmark reading a phone-sized photo (docs/BENCHMARKS.md): `decode_image` of the same 12-megapixel JPEG
tagged sRGB and tagged Display P3 (an iPhone's colour space, converted to sRGB by `perceive/colour.py`), in turns.

  python tools/bench_decode.py [--repeat 15] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import interleaved_median_ms  # noqa: E402

from edge_rap.perceive.colour import DISPLAY_P3_PRIMARIES, display_profile  # noqa: E402
from edge_rap.perceive.images import decode_image  # noqa: E402


def phone_photo(profile: bytes) -> bytes:
    """A 4032 x 3024 JPEG of a real sample photo scaled up (smooth areas and edges, as a photo has)."""
    from PIL import Image, ImageCms
    from skimage import data

    out = io.BytesIO()
    picture = Image.fromarray(data.astronaut()).resize((4032, 3024), Image.Resampling.BICUBIC)
    picture.save(out, "JPEG", quality=90, icc_profile=profile or ImageCms.ImageCmsProfile(
        ImageCms.createProfile("sRGB")).tobytes())
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    srgb, p3 = phone_photo(b""), phone_photo(display_profile(DISPLAY_P3_PRIMARIES))
    srgb_ms, p3_ms = interleaved_median_ms(lambda: decode_image(srgb), lambda: decode_image(p3), args.repeat)
    shift = np.abs(decode_image(p3).pixels.astype(int) - decode_image(srgb).pixels).mean()
    result = {"srgb_ms": round(srgb_ms, 1), "display_p3_ms": round(p3_ms, 1), "ratio": round(p3_ms / srgb_ms, 2),
              "mean_level_change": round(float(shift), 2)}
    print(json.dumps(result) if args.json else
          f"12 MP JPEG, median of {args.repeat}: sRGB {srgb_ms:.1f} ms, Display P3 {p3_ms:.1f} ms "
          f"({p3_ms / srgb_ms:.2f}x); the conversion moves a level by {shift:.2f} on average")


if __name__ == "__main__":
    main()
