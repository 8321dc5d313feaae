"""Where the int8 embedder's time goes against fp32, by layer kind, and how the speed-up depends on batch and threads.

  python tools/profile_int8.py [--photo IMAGE] [--repeat 20] [--json out.json]

The default embedders in the model cache (efficientnet-lite0-int8 and -fp32), one frame's 5 views (whole +
4 quadrants) at the model's input size. Kernel times come from onnxruntime's profiler, both models run in
turns in one process, and are summed per layer kind (the stem, depthwise, pointwise convolutions, the rest).
Wall times of the model alone (the views preprocessed once; preprocessing costs both the same): medians of
`repeat` frames, int8 and fp32 in turns, the views as one batch or one by one, on all cores (onnxruntime's
default) or one thread. Only ratios within one run mean anything on a
shared machine.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from timing import interleaved_median_ms

from bench_retrieval import machine


def layer_kind(event: dict) -> str:
    """The kind of layer a profiled fp32 Conv or int8 QLinearConv node is (others by their operator)."""
    op, name = event["args"]["op_name"], event["name"]
    if op == "Conv":  # fp32: the weight's shape tells (nodes fused for NCHWc are named after their outputs)
        weight = next(iter(event["args"]["input_type_shape"][1].values()))
        return "stem conv" if weight[1] == 3 else "pointwise conv" if weight[2] == 1 else "depthwise conv"
    if op == "QLinearConv":
        if "_conv_stem" in name:
            return "stem conv"
        return "depthwise conv" if "_depthwise_conv" in name else "pointwise conv"
    return op


def kernel_ms_by_kind(paths: dict[str, Path], batch: np.ndarray, repeat: int) -> dict[str, dict[str, float]]:
    """Per model, the mean kernel milliseconds per frame of each layer kind, the models profiled in turns."""
    import onnxruntime as ort

    sessions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in paths.items():
            options = ort.SessionOptions()
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(tmp, label)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            sessions[label] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for i in range(repeat):
            for label in (list(sessions) if i % 2 == 0 else list(sessions)[::-1]):
                sessions[label].run(None, {sessions[label].get_inputs()[0].name: batch})
        result = {}
        for label, session in sessions.items():
            totals: dict[str, float] = collections.defaultdict(float)
            for event in json.loads(Path(session.end_profiling()).read_text()):
                if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                    totals[layer_kind(event)] += event["dur"] / 1000 / repeat
            result[label] = {kind: round(ms, 1) for kind, ms in sorted(totals.items(), key=lambda kv: -kv[1])}
    return result


def main() -> None:
    from edge_rap.config import load_settings
    from edge_rap.models.cache import ModelCache
    from edge_rap.models.sessions import open_session
    from edge_rap.perceive.embed import preprocess
    from edge_rap.perceive.images import read_image_file
    from edge_rap.perceive.views import query_views
    from edge_rap.synth import synthetic_images

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--photo", type=Path, help="the frame (default: a generated scene)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cache = ModelCache(load_settings().models)
    manifests = {p: cache.manifest(f"efficientnet-lite0-{p}") for p in ("int8", "fp32")}
    pixels = read_image_file(args.photo).image.pixels if args.photo else synthetic_images(1, seed=3)[0]
    views = query_views(pixels, 2)
    int8 = manifests["int8"]
    batch = preprocess(views, int8.input["size"], np.asarray(int8.input["mean"], np.float32),
                       np.asarray(int8.input["std"], np.float32))
    report = {"machine": machine(), "quantization": int8.quantization,
              "kernel_ms_per_frame": kernel_ms_by_kind({p: m.file_path("image") for p, m in manifests.items()},
                                                       batch, args.repeat),
              "frame_ms": []}
    for threads in (0, 1):
        sessions = {p: open_session(m.file_path("image"), "cpu", threads) for p, m in manifests.items()}
        for together in (True, False):
            def frame(session):  # the model alone: the views' preprocessing is the same for both
                name = session.input_names[0]
                return (session.run({name: batch}) if together
                        else [session.run({name: batch[i : i + 1]}) for i in range(len(batch))])
            t_int8, t_fp32 = interleaved_median_ms(lambda: frame(sessions["int8"]), lambda: frame(sessions["fp32"]),
                                                   args.repeat)
            report["frame_ms"].append({"threads": threads or "default",
                                       "views": "one batch" if together else "one by one",
                                       "int8": round(t_int8, 1), "fp32": round(t_fp32, 1),
                                       "speedup": round(t_fp32 / t_int8, 2)})
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
