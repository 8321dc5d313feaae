"""Which pasted concepts `eval localize` misses: by concept, by pasted width and by background, over seeds, and
where each miss dropped out (never proposed by dense matching, contested, its best crop owned by another
concept, below its threshold, or placed and then dropped).

  python tools/localize_misses.py --dataset ../shared/data/real_objects_dev [--seeds 0 1 2 3 4 5]
      [--frame-size 1280x960 --widths 0.2-0.45] [--feature-side 800] [--json out.json]

The frames are `eval localize`'s own (evaluate.localize_frames) and each is answered by `recognize`, so the
totals equal the CLI's summed over the seeds. `--feature-side` changes the frame's feature pass (regions.py's
FEATURE_LONG_SIDE) for this run only, to try a side before changing it. Dev data only: say so with any number.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path


def main() -> None:
    from edge_rap.app import open_embedder, open_memory, retrieval_policy
    from edge_rap.config import load_settings
    from edge_rap.eval.composites import Layout
    from edge_rap.eval.dataset import read_dataset
    from edge_rap.eval.evaluate import localize_frames, remember_references
    from edge_rap.perceive.boxes import iou
    from edge_rap.retrieve import Retriever, locate
    from edge_rap.types import Image

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--frame-size", default="640x480")
    parser.add_argument("--widths", default="0.15-0.6")
    parser.add_argument("--feature-side", type=int, help="the frame's feature pass side for this run")
    parser.add_argument("--json", type=Path, help="also write every placed concept's row here")
    args = parser.parse_args()
    width, height = (int(v) for v in args.frame_size.split("x"))
    low, high = (float(v) for v in args.widths.split("-"))
    if args.feature_side:
        locate.FEATURE_LONG_SIDE = args.feature_side

    settings = load_settings()
    embedder = open_embedder(settings)
    rows, false_hits = [], []
    with tempfile.TemporaryDirectory(prefix="edge-rap-misses-") as tmp:
        memory = open_memory(settings, embedder, Path(tmp))
        concepts = remember_references(memory, read_dataset(args.dataset), [])
        retriever = Retriever(memory.store, embedder, retrieval_policy(settings))
        for seed in args.seeds:
            for frame in localize_frames(concepts, 4, seed, [], Layout((width, height), low, high)):
                image = Image(frame.pixels, "composite")
                hits = {h.concept.name: h for h in retriever.recognize(image).hits}
                placed = {p.name for p in frame.placed}
                missed = placed - set(hits)
                stages = dropped_out(retriever, memory.store, image, missed) if missed else {}
                for p in frame.placed:
                    hit = hits.get(p.name)
                    rows.append({"seed": seed, "name": p.name, "width": round((p.box.x1 - p.box.x0) / width, 2),
                                 "background": "concept" if frame.background else "scene", "found": hit is not None,
                                 "iou": round(iou(hit.box, p.box), 3) if hit else None, "stage": stages.get(p.name)})
                false_hits += [name for name in hits if name not in placed and name != frame.background]
        memory.close()

    def share(selected: list[dict]) -> str:
        return f"{sum(r['found'] for r in selected)}/{len(selected)}"

    found = [r for r in rows if r["found"]]
    print(f"found {share(rows)}, false hits {len(false_hits)} {dict(Counter(false_hits))}, "
          f"IoU >= 0.5 for {sum(r['iou'] >= 0.5 for r in found)}/{len(found)} found")
    print("by concept:", {n: share([r for r in rows if r["name"] == n]) for n in sorted({r["name"] for r in rows})})
    bands = [(0.0, 0.25), (0.25, 0.35), (0.35, 0.45), (0.45, 1.01)]
    print("by width:", {f"{a:.2f}-{b:.2f}": share([r for r in rows if a <= r["width"] < b]) for a, b in bands})
    print("by background:", {k: share([r for r in rows if r["background"] == k]) for k in ("scene", "concept")})
    print("misses by stage:", dict(Counter(r["stage"].split(" (")[0] for r in rows if not r["found"])))
    for r in rows:
        if not r["found"]:
            print(f"  seed {r['seed']} {r['name']} at {r['width']:.2f} of the width: {r['stage']}")
    if args.json:
        args.json.write_text(json.dumps(rows))


def dropped_out(retriever, store, image, missed: set[str]) -> dict[str, str]:
    """For each missed concept, the step of `recognize`'s placing where it dropped out."""
    proposed = retriever.propose(image) or []
    names = store.concepts_by_id([c.concept_id for c in proposed])
    by_name = {names[c.concept_id].name: c for c in proposed if c.concept_id in names}
    located = {h.concept.name: h for h in retriever.locate(image, proposed).candidates}
    stages = {}
    for name in missed:
        if name not in by_name:
            stages[name] = "not proposed"
        elif by_name[name].contested:
            stages[name] = "contested"
        elif name not in located:
            stages[name] = "best crop owned by another concept"
        else:
            hit = located[name]
            stage = "below its threshold" if hit.score < hit.threshold else "placed, then dropped"
            stages[name] = f"{stage} ({hit.score:.3f} against {hit.threshold:.3f})"
    return stages


if __name__ == "__main__":
    main()
