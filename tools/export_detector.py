"""Export an open-vocabulary detector (OWL-ViT / OWLv2) to ONNX through optimum, fp32 and int8, with manifests.

  python tools/export_detector.py --model google/owlv2-base-patch16-ensemble     # needs the hub once
  python tools/export_detector.py --model google/owlvit-base-patch32
  python tools/export_detector.py --model DIR                                    # a downloaded checkpoint
  python tools/export_detector.py --tiny [--kind owlv2]                          # random weights, for tests
  python tools/export_detector.py --tiny --full-size                             # real size, random: timing

The folders land in the model cache ($EDGE_RAP_HOME/models, or --out) as <name>-fp32 and <name>-int8;
use one with `edge-rap recognize --detector <name>-int8 IMAGE...`: the categories of the remembered concepts
become its text queries ("a photo of a {category}").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from edge_rap.errors import EdgeRapError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="Hugging Face model id or a local checkpoint folder (OWL-ViT or OWLv2)")
    source.add_argument("--tiny", action="store_true", help="a tiny randomly initialised model (plumbing tests only)")
    parser.add_argument("--kind", choices=("owlvit", "owlv2"), default="owlvit", help="architecture of --tiny")
    parser.add_argument("--full-size", action="store_true",
                        help="with --tiny: the base architecture's real size (random weights), for timing only")
    parser.add_argument("--name", help="model name in the cache (default owl-<model> or owl-tiny-<kind>)")
    parser.add_argument("--template", default="a photo of a {}", help="text query around each category")
    parser.add_argument("--out", type=Path, help="model cache folder (default $EDGE_RAP_HOME/models)")
    args = parser.parse_args(argv)
    from edge_rap.config import load_settings
    from edge_rap.export.detector import export_detector, save_tiny_owl

    try:
        out_root = args.out or load_settings().models
        if args.tiny:
            with tempfile.TemporaryDirectory() as tmp:
                checkpoint = save_tiny_owl(Path(tmp) / "checkpoint", args.kind, full_size=args.full_size)
                default = f"owl-random-{args.kind}-base" if args.full_size else f"owl-tiny-{args.kind}"
                out = export_detector(str(checkpoint), out_root, args.name or default, args.template)
        else:
            out = export_detector(args.model, out_root, args.name, args.template)
    except EdgeRapError as e:
        print(f"export_detector: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out.fp32}\nwrote {out.int8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
