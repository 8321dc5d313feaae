"""Localisation quality on the dev sets (issue 3): `edge-rap eval localize` over several seeds and frame sizes.

  python tools/make_devsets.py --out /tmp/devsets
  python tools/bench_localize.py --devsets /tmp/devsets [--seeds 0 1 2] [--json out.json]

For each dev set found (myvlm-photos, myvlm-synth, group): 4 concepts per frame at each seed, then 1, 2, 6
and 8 per frame at the first seed (does it collapse when many concepts share a frame?). Each line is what
`evaluate_localize` reports, so the figures are exactly the CLI's. Dev sets only: say so with any number.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SETS = ("myvlm-photos", "myvlm-synth", "group", "myvlm-photos-sideways")
KEYS = ("recall", "precision", "mean_iou", "iou50")


def main() -> None:
    from edge_rap.app import open_embedder
    from edge_rap.config import load_settings
    from edge_rap.eval.evaluate import evaluate_localize

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--devsets", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    settings = load_settings()
    embedder = open_embedder(settings)
    rows = []
    print(f"embedder {embedder.space.model}\n\n| dev set | per frame | seed | frames | " + " | ".join(KEYS) + " |")
    print("| --- " * (4 + len(KEYS)) + "|")
    for name in SETS:
        folder = args.devsets / name
        if not folder.is_dir():
            continue
        runs = [(4, seed) for seed in args.seeds] + [(n, args.seeds[0]) for n in (1, 2, 6, 8)]
        for per_frame, seed in runs:
            report = evaluate_localize(settings, folder, per_frame=per_frame, seed=seed, embedder=embedder)
            rows.append({"set": name, **report})
            print(f"| {name} | {per_frame} | {seed} | {report['frames']} | "
                  + " | ".join("-" if report[k] is None else f"{report[k]:.3f}" for k in KEYS) + " |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
