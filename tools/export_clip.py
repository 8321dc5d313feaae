"""Export an open_clip model (architecture + pretrained tag) to ONNX image/text encoders, fp32 and int8.

  python tools/export_clip.py --arch ViT-B-32 --pretrained laion2b_s34b_b79k
  python tools/export_clip.py --arch tiny --config DIR --pretrained ''    # random weights, for tests

The folders land in the model cache ($EDGE_RAP_HOME/models, or --out) as <name>-fp32 and <name>-int8;
select one with `edge-rap COMMAND --embedder <name>-int8 ...` (an existing memory first takes
`edge-rap reindex --embedder <name>-int8`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_rap.config import load_settings
from edge_rap.errors import EdgeRapError
from edge_rap.export.clip import export_clip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--arch", required=True, help="open_clip architecture, e.g. ViT-B-32")
    parser.add_argument("--pretrained", default="",
                        help="pretrained tag (downloaded) or a checkpoint path; '' = random")
    parser.add_argument("--config", type=Path, help="folder of extra open_clip model configs (JSON)")
    parser.add_argument("--name", help="model name in the cache (default clip-<arch>-<tag>)")
    parser.add_argument("--out", type=Path, help="model cache folder (default $EDGE_RAP_HOME/models)")
    parser.add_argument("--no-calibrate", action="store_true", help="skip the threshold calibration on sample photos")
    args = parser.parse_args()
    try:
        out = export_clip(args.arch, args.pretrained or None, args.out or load_settings().models, args.name,
                          args.config, calibrate=not args.no_calibrate)
    except EdgeRapError as e:
        print(f"export_clip: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out.fp32}\nwrote {out.int8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
