"""Benchmarks for remember and retrieve (issue 2). Prints a Markdown report; medians of repeated runs.

  python tools/bench_retrieval.py [--devsets /tmp/devsets] [--json out.json]

1. remember latency for one concept, warm (memory already holding 30 concepts);
2. retrieval latency per image (whole image + 9 crops, retrieval alone) with the int8 ONNX embedder and with the fp32
   torch model it came from, in the same run, as a ratio; top-1 of both on the dev sets (tools/make_devsets.py);
3. search latency of the USearch index (memory-mapped view, as readers use it) against a NumPy
   brute-force scan, at 1k, 10k and 100k vectors of 1280 dims.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np
from timing import median_ms



def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return f"{cpu} ({vectors()}), {os.cpu_count()} cores, Python {platform.python_version()}"


def vectors() -> str:
    """The widest vector instructions the libraries see: what this CPU has, unless tools/avx2_only.py hides some."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as has
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__ as has
    if has.get("AVX512F"):
        return "AVX-512" + (" VNNI" if has.get("AVX512VNNI") else "")
    return next((name for name in ("AVX2", "AVX", "ASIMDDP", "ASIMD") if has.get(name)), platform.machine())


def bench_remember(settings, embedder, repeat: int) -> dict:
    from PIL import Image

    from edge_rap.app import open_memory
    from edge_rap.synth import synthetic_image

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        memory = open_memory(settings, embedder, root / "mem")
        paths = []
        for k in range(30 + repeat + 2):
            path = root / f"{k}.jpg"
            Image.fromarray(synthetic_image(1000 + k, 480)).save(path, quality=90)
            paths.append(path)
        for k in range(30):
            memory.remember(f"c{k}", [paths[k]])
        counter = iter(range(30, 30 + repeat + 2))
        ms = median_ms(lambda: memory.remember(f"c{(k := next(counter))}", [paths[k]]), repeat)
        memory.close()
    return {"remember_ms": round(ms, 1), "memory_concepts": 30}


def bench_embedders(settings, int8, devsets: Path | None, repeat: int) -> dict:
    from edge_rap.eval.evaluate import evaluate_retrieval
    from edge_rap.export.efficientnet import TorchEmbedder
    from edge_rap.perceive.views import query_views
    from edge_rap.synth import synthetic_image

    torch_fp32 = TorchEmbedder()
    frame = synthetic_image(5, 640)[:480]
    crops = query_views(frame)
    out = {}
    # Interleave the two so that machine noise hits both alike; the ratio is what we report.
    t_int8, t_torch = [], []
    for _ in range(3):
        t_int8.append(median_ms(lambda: int8.embed(crops), repeat))
        t_torch.append(median_ms(lambda: torch_fp32.embed(crops), repeat))
    out["recognise_int8_ms"] = round(statistics.median(t_int8), 1)
    out["recognise_torch_fp32_ms"] = round(statistics.median(t_torch), 1)
    out["speedup"] = round(statistics.median(t_torch) / statistics.median(t_int8), 2)
    if devsets:
        for name in sorted(p.name for p in devsets.iterdir() if p.is_dir()):
            a = evaluate_retrieval(settings, devsets / name, embedder=int8)
            b = evaluate_retrieval(settings, devsets / name, embedder=torch_fp32)
            out[f"top1_{name}"] = {"int8": a["top1"], "torch_fp32": b["top1"], "queries": a["queries"],
                                   "weighted_int8": a["recognition_weighted"]}
    return out


def bench_search(repeat: int) -> list[dict]:
    from usearch.index import Index

    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1_000, 10_000, 100_000):
            vectors = rng.standard_normal((n, 1280)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            keys = np.arange(n) // 4  # four views per concept, as remembered
            index = Index(ndim=1280, metric="cos", dtype="f32", multi=True)
            index.add(keys, vectors)
            path = Path(tmp) / f"{n}.usearch"
            index.save(str(path))
            view = Index.restore(str(path), view=True)
            # A query close to one stored vector (cosine about 0.98), as a new photo of a remembered concept is.
            queries = vectors[rng.integers(0, n, 50)] + 0.005 * rng.standard_normal((50, 1280)).astype(np.float32)
            it = iter(range(10**9))
            hnsw = median_ms(lambda: view.search(queries[next(it) % 50], count=10), repeat * 5)
            exact = median_ms(lambda: view.search(queries[next(it) % 50], count=10, exact=True), repeat)
            brute = median_ms(lambda: np.argpartition(-(vectors @ queries[next(it) % 50]), 10)[:10], repeat)
            hits = sum(int(view.search(q, count=1).keys[0]) == int(keys[np.argmax(vectors @ q)]) for q in queries)
            rows.append({"vectors": n, "usearch_hnsw_ms": round(hnsw, 3), "usearch_exact_ms": round(exact, 3),
                         "numpy_ms": round(brute, 3), "speedup_hnsw_vs_numpy": round(brute / hnsw, 1),
                         "hnsw_recall@1": hits / len(queries)})
    return rows


def main() -> None:
    from edge_rap.app import open_embedder
    from edge_rap.config import load_settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--devsets", type=Path, help="folder of dev sets (tools/make_devsets.py --out)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings = load_settings()
    embedder = open_embedder(settings)
    report = {"machine": machine(), "embedder": embedder.space.model}
    report.update(bench_remember(settings, embedder, args.repeat))
    report.update(bench_embedders(settings, embedder, args.devsets, args.repeat))
    report["search"] = bench_search(args.repeat)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
