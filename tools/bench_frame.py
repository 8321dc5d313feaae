"""Per-frame cost of `recognize` on a 640 x 480 frame, stage by stage (issue 3). Medians of repeated runs.

  python tools/bench_frame.py [--concepts 30] [--repeat 15] [--versus FIELD=VALUE] [--composites DIR]

The memory holds N concepts remembered from seeded generated images; the frame pastes four of them onto a
generated background (the layout of `eval localize`); the retrieval policy is the device profile's, as in
`recognize`. Stages: the whole image + 4 crops embedded, every
concept scored, one feature pass at 640 px, dense matching, crop confirmation (the rest of `locate`:
the contest of each proposal on pooled features, and the crops of the uncontested ones).
--versus times `recognize` against the same with one RetrievalPolicy field changed (e.g.
placing_query_grid=3), in turns in this process, and reports the ratio. --composites DIR times `recognize`
per frame on the frames `eval localize` builds from a dev set instead (real photos; no stage split; other
layouts with --frame-size 1280x960 --widths 0.2-0.45).
--person also remembers a person (Grace Hopper's sample photo) and pastes her into the frame: every frame
then runs the face detector and embedder too, as `recognize` does once a person is remembered.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from timing import interleaved_median_ms, median_ms



def policy_change(text: str) -> dict:
    """FIELD=VALUE for a numeric RetrievalPolicy field (or a tuple of numbers, VALUE comma-separated: grow=1.45
    or grow=1.3,1.6), as keyword arguments for dataclasses.replace."""
    from dataclasses import fields

    from edge_rap.retrieve import RetrievalPolicy

    field, _, value = text.partition("=")
    kinds = {f.name: type(f.default) for f in fields(RetrievalPolicy) if type(f.default) in (int, float, tuple)}
    if field not in kinds or not value:
        raise ValueError(f"--versus wants FIELD=VALUE with FIELD one of {', '.join(kinds)}")
    try:
        if kinds[field] is tuple:
            return {field: tuple(float(v) for v in value.split(","))}
        return {field: kinds[field](value)}
    except ValueError:
        wanted = {int: "an integer", float: "a number", tuple: "numbers separated by commas"}[kinds[field]]
        raise ValueError(f"--versus {text}: {field} must be {wanted}") from None


def time_composites(settings, embedder, dataset: Path, repeat: int, change: dict | None, versus: str | None,
                    layout=None) -> dict:
    """`recognize` per frame over the real composites of a dev set: the crops each frame needs, the time of a
    pass over all frames divided by their number (median of `repeat` passes), and that time over the query
    embedding's (the whole frame and its grid, as retrieval alone embeds it)."""
    from edge_rap.app import open_memory, retrieval_policy
    from edge_rap.eval.dataset import read_dataset
    from edge_rap.eval.evaluate import localize_frames, remember_references
    from edge_rap.retrieve import Retriever
    from edge_rap.types import Image

    with tempfile.TemporaryDirectory() as tmp:
        memory = open_memory(settings, embedder, Path(tmp) / "mem")
        skipped: list[str] = []
        concepts = remember_references(memory, read_dataset(dataset), skipped)
        images = [Image(f.pixels, "composite") for f in localize_frames(concepts, 4, 0, skipped, layout)]
        for line in skipped:
            print(f"skipped: {line}", file=sys.stderr)
        retriever = Retriever(memory.store, embedder, retrieval_policy(settings))  # as `recognize`
        proposals = [retriever.propose(image) or [] for image in images]
        report = {"dataset": str(dataset), "frames": len(images),
                  "frame_size": list(images[0].size) if images else None,
                  "crops_per_frame": round(float(np.mean([sum(len(c.boxes) for c in p if not c.contested)
                                                         for p in proposals])), 2),
                  "contested_per_frame": round(float(np.mean([sum(c.contested for c in p) for p in proposals])), 2)}
        every = lambda r: [r.recognize(image) for image in images]  # noqa: E731
        if change:
            other = Retriever(memory.store, embedder, replace(retriever.policy, **change))
            mine, theirs = interleaved_median_ms(lambda: every(retriever), lambda: every(other), repeat)
            report["versus"] = {"changed": versus, "recognize_ms": round(mine / len(images), 1),
                                "changed_recognize_ms": round(theirs / len(images), 1),
                                "ratio": round(mine / theirs, 3)}
        else:
            report["recognize_ms"] = round(median_ms(lambda: every(retriever), repeat) / len(images), 1)
        # The bound's unit: the whole frame and its 3 x 3 grid embedded, as retrieval alone does.
        query = median_ms(lambda: [retriever.embed_query(image, retriever.policy.query_grid) for image in images],
                          repeat) / len(images)
        recognize = report["versus"]["recognize_ms"] if change else report["recognize_ms"]
        report["query_embedding_ms"] = round(query, 1)
        report["recognize_over_query_embedding"] = round(recognize / query, 2)
        memory.close()
    return report


def main() -> None:
    from PIL import Image as PILImage

    from edge_rap.app import open_embedder, open_memory, retrieval_policy
    from edge_rap.eval.composites import compose
    from edge_rap.config import load_settings
    from edge_rap.perceive.regions import FEATURE_LONG_SIDE, dense_candidates
    from edge_rap.retrieve import Retriever
    from edge_rap.synth import synthetic_image
    from edge_rap.types import Image

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--concepts", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--versus", metavar="FIELD=VALUE", help="a RetrievalPolicy field to compare against")
    parser.add_argument("--person", action="store_true", help="remember a person too: faces run on every frame")
    parser.add_argument("--composites", metavar="DIR", type=Path,
                        help="time every frame `eval localize --dataset DIR` builds (seed 0, 4 per frame) instead")
    parser.add_argument("--frame-size", metavar="WxH", default="640x480", help="--composites: the frames' size")
    parser.add_argument("--widths", metavar="MIN-MAX", default="0.15-0.6",
                        help="--composites: each pasted photo's width, as a fraction of the frame's")
    args = parser.parse_args()
    try:
        change = policy_change(args.versus) if args.versus else None
    except ValueError as e:
        parser.error(str(e))
    settings = load_settings()
    embedder = open_embedder(settings)
    if args.composites:
        from edge_rap.eval.composites import Layout

        width, height = (int(v) for v in args.frame_size.lower().split("x"))
        narrow, wide = (float(v) for v in args.widths.split("-"))
        layout = Layout((width, height), narrow, wide)
        print(json.dumps(time_composites(settings, embedder, args.composites, args.repeat, change, args.versus,
                                         layout), indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        memory = open_memory(settings, embedder, Path(tmp) / "mem")
        photos = [synthetic_image(5000 + k, 320) for k in range(args.concepts)]
        for k, pixels in enumerate(photos):
            path = Path(tmp) / f"{k}.png"
            PILImage.fromarray(pixels).save(path)
            memory.remember(f"c{k}", [path])
        pasted = [(f"c{k}", photos[k]) for k in range(4)]
        if args.person:
            from edge_rap.export.calibrate import sample_photo_bank

            grace = sample_photo_bank()["grace_hopper"]
            PILImage.fromarray(grace).save(Path(tmp) / "grace.png")
            memory.remember("grace", [Path(tmp) / "grace.png"], category="person")
            pasted = pasted[:3] + [("grace", grace)]
        frame = compose(pasted, synthetic_image(1, 640), np.random.default_rng(0))
        image = Image(frame.pixels, "frame")
        retriever = Retriever(memory.store, embedder, retrieval_policy(settings),  # as `recognize`
                              faces=lambda: memory.faces)
        retriever.recognize(image)  # warm: reference cells are computed once per memory generation
        grid = retriever.policy.placing_query_grid  # as recognize embeds the frame where it places
        query = retriever.embed_query(image, grid)
        features = embedder.feature_map(image.pixels, FEATURE_LONG_SIDE)
        cells = retriever.references.cells()
        proposed = retriever.propose(image, query, grid)
        report = {
            "concepts": args.concepts,
            "person": args.person,
            "max_candidates": retriever.policy.max_candidates,
            "contested": sum(c.contested for c in proposed),  # proposals whose place pools as another concept
            "crops": sum(len(c.boxes) for c in proposed if not c.contested),
            "embed_whole_and_crops_ms": median_ms(lambda: retriever.embed_query(image, grid), args.repeat),
            "score_every_concept_ms": median_ms(lambda: retriever.score(query), args.repeat),
            "feature_pass_ms": median_ms(lambda: embedder.feature_map(image.pixels, FEATURE_LONG_SIDE), args.repeat),
            "dense_matching_ms": median_ms(
                lambda: dense_candidates(features, cells, image.size, limit=retriever.policy.max_candidates),
                args.repeat),
            "locate_total_ms": median_ms(lambda: retriever.locate(image), args.repeat),
            "one_embedding_ms": median_ms(lambda: embedder.embed([image.pixels]), args.repeat),
            # issue 2's "recognise one image": the whole frame and its 3 x 3 crops, as retrieval alone embeds it
            "query_embedding_ms": median_ms(lambda: retriever.embed_query(image, retriever.policy.query_grid),
                                            args.repeat),
            "recognize_total_ms": median_ms(lambda: retriever.recognize(image), args.repeat),
            "faces_ms": median_ms(lambda: retriever.face_hits(image), args.repeat),
        }
        report = {k: round(v, 1) if isinstance(v, float) else v for k, v in report.items()}
        report["confirm_crops_ms"] = round(report["locate_total_ms"] - report["feature_pass_ms"]
                                           - report["dense_matching_ms"], 1)
        report["locate_over_one_embedding"] = round(report["locate_total_ms"] / report["one_embedding_ms"], 1)
        report["locate_over_query_embedding"] = round(report["locate_total_ms"] / report["query_embedding_ms"], 2)
        if change:
            other = Retriever(memory.store, embedder, replace(retriever.policy, **change))
            mine, theirs = interleaved_median_ms(lambda: retriever.recognize(image), lambda: other.recognize(image),
                                                 args.repeat)
            report["versus"] = {"changed": args.versus, "recognize_ms": round(mine, 1),
                                "changed_recognize_ms": round(theirs, 1), "ratio": round(mine / theirs, 3)}
        memory.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
