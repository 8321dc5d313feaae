"""How each int8 quantisation scheme of the default embedder compares with fp32 on real photos (issue 10).

  python tools/bench_quantize.py --dataset ../shared/data/real_objects_dev [--repeat 15] [--json out.json]

For fp32 and each scheme of edge_rap.export.quantize.Scheme: how many output channels can saturate a 16-bit
pair sum on AVX2 without VNNI (0 = the same results on every CPU), the worst and median cosine to the fp32
model over every photo of the dataset, the median time to embed one frame's views (whole + 4 quadrants,
at the model's input size) and the median over rounds of fp32's time / the scheme's (every scheme and fp32
run once per round, in shuffled order), and `eval retrieval` on the dataset.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from timing import round_robin_ms

from bench_retrieval import machine


def variant(fp32_folder: Path, work: Path, scheme) -> Path:
    """A model folder like the shipped int8 one, quantised with `scheme` and calibrated as exports are."""
    from edge_rap.export.calibrate import calibrate_threshold
    from edge_rap.export.efficientnet import INPUT_SIZE, MEAN, STD
    from edge_rap.export.quantize import quantize_image_encoder
    from edge_rap.models.cache import Manifest, sha256_file, write_manifest
    from edge_rap.perceive.embed import OnnxImageEmbedder, preprocess
    from edge_rap.synth import synthetic_images

    folder = work / "".join(c if c.isalnum() else "-" for c in scheme.label)
    folder.mkdir()
    calibration = list(preprocess(synthetic_images(48, seed=7), INPUT_SIZE, np.asarray(MEAN, np.float32),
                                  np.asarray(STD, np.float32)))
    source = Manifest.load(fp32_folder)
    quantize_image_encoder(source.file_path("image"), folder / "model.onnx", calibration, scheme=scheme)
    manifest = json.loads((fp32_folder / "manifest.json").read_text())
    manifest.update(name=f"bench-{folder.name}", space=f"bench-{folder.name}",
                    files={"image": {"path": "model.onnx", "sha256": sha256_file(folder / "model.onnx")}})
    write_manifest(folder, manifest)
    manifest["calibration"] = calibrate_threshold(OnnxImageEmbedder(Manifest.load(folder), "cpu")).to_json()
    write_manifest(folder, manifest)
    return folder


def main() -> None:
    from edge_rap.config import load_settings
    from edge_rap.eval.dataset import image_files
    from edge_rap.eval.evaluate import evaluate_retrieval
    from edge_rap.export.efficientnet import SCHEME, STEM
    from edge_rap.export.quantize import Scheme, saturating_weights
    from edge_rap.perceive.images import read_image_file
    from edge_rap.models.cache import Manifest, ModelCache
    from edge_rap.perceive.embed import OnnxImageEmbedder
    from edge_rap.perceive.views import query_views

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--dataset", type=Path, required=True, help="one folder per concept (eval retrieval's)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings = load_settings()
    fp32 = OnnxImageEmbedder(ModelCache(settings.models).manifest("efficientnet-lite0-fp32"), "cpu")
    photos = [read_image_file(p).image.pixels for sub in sorted(args.dataset.iterdir()) if sub.is_dir()
              for p in image_files(sub)]
    reference = fp32.embed(photos)
    frame = query_views(photos[0], 2)
    report = {"machine": machine(), "photos": len(photos), "dataset": str(args.dataset), "schemes": []}
    fp32_eval = evaluate_retrieval(settings, args.dataset, embedder=fp32)
    report["fp32"] = {k: fp32_eval[k] for k in ("top1", "recognition_positive", "recognition_negative",
                                                 "recognition_weighted")}
    with tempfile.TemporaryDirectory() as tmp:
        embedders = []
        for scheme in (Scheme(reduce_range=False), Scheme(), Scheme(float_nodes=(STEM,)),
                       Scheme(pair_bounded=True), Scheme(pair_bounded=True, float_nodes=(STEM,)), SCHEME):
            folder = variant(fp32.manifest.folder, Path(tmp), scheme)
            int8 = OnnxImageEmbedder(Manifest.load(folder), "cpu")
            embedders.append(int8)
            cos = np.sum(int8.embed(photos) * reference, axis=1)
            evaluated = evaluate_retrieval(settings, args.dataset, embedder=int8)
            report["schemes"].append({
                "scheme": scheme.label, "saturating_channels": len(saturating_weights(folder / "model.onnx")),
                "cosine_to_fp32_min": round(float(cos.min()), 4),
                "cosine_to_fp32_median": round(float(np.median(cos)), 4),
                **{k: evaluated[k] for k in ("top1", "recognition_positive", "recognition_negative",
                                             "recognition_weighted", "threshold")},
            })
        # Every scheme and fp32 in each round, so that each round's ratios share the machine's load.
        rounds = np.array(round_robin_ms([lambda e=e: e.embed(frame) for e in [fp32, *embedders]], args.repeat))
        report["fp32_frame_ms"] = round(float(np.median(rounds[:, 0])), 1)
        for k, row in enumerate(report["schemes"], start=1):
            row["frame_ms"] = round(float(np.median(rounds[:, k])), 1)
            row["speedup"] = round(float(np.median(rounds[:, 0] / rounds[:, k])), 2)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
