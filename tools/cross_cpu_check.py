"""Do two CPUs give the int8 embedder's vectors alike? (issue 10; how docs/BENCHMARKS.md compared x86 and ARM)

  python tools/cross_cpu_check.py prepare DIR [--photos FOLDER]   # here: model, preprocessed inputs
  python tools/cross_cpu_check.py run DIR [--label NAME]           # on each CPU: needs only numpy + onnxruntime
  python tools/cross_cpu_check.py compare DIR/A.npy DIR/B.npy      # GeM-pooled cosine per photo

`run` names its output after the machine (`x86_64.npy`, `aarch64.npy`), or `--label` (two x86 CPUs: e.g. this
one and, under `qemu-x86_64 -cpu Haswell`, an emulated AVX2 CPU without AVX-512), so one folder carried between
machines (or into an emulated chroot) collects them all.
"""

from __future__ import annotations

import argparse
import platform
import shutil
from pathlib import Path

import numpy as np


def prepare(folder: Path, photos: Path | None) -> None:
    from edge_rap.export.calibrate import sample_photo_bank
    from edge_rap.config import load_settings
    from edge_rap.eval.dataset import image_files
    from edge_rap.perceive.images import read_image_file
    from edge_rap.models.cache import ModelCache
    from edge_rap.perceive.embed import preprocess

    manifest = ModelCache(load_settings().models).manifest("efficientnet-lite0-int8")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(manifest.file_path("image"), folder / "model.onnx")
    pixels = list(sample_photo_bank().values())
    if photos:
        pixels += [read_image_file(p).image.pixels for sub in sorted(photos.iterdir()) if sub.is_dir()
                   for p in image_files(sub)[:1]]
    spec = manifest.input
    np.save(folder / "inputs.npy", preprocess(pixels, int(spec["size"]), np.asarray(spec["mean"], np.float32),
                                              np.asarray(spec["std"], np.float32)))


def run(folder: Path, label: str | None = None) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.load(folder / "inputs.npy")
    name = session.get_inputs()[0].name
    y = np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])
    label = label or platform.machine()
    np.save(folder / f"{label}.npy", y)
    print(f"{label}: {len(x)} photos, onnxruntime {ort.__version__}")


def pooled(maps: np.ndarray, p: float = 3.0) -> np.ndarray:
    vectors = np.power(np.power(np.maximum(maps, 1e-6), p).mean(axis=(2, 3)), 1 / p)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def compare(a: Path, b: Path) -> None:
    maps_a, maps_b = np.load(a), np.load(b)
    cos = np.sum(pooled(maps_a) * pooled(maps_b), axis=1)
    print(f"{a.name} vs {b.name}: cosine worst {cos.min():.5f} median {np.median(cos):.5f}, "
          f"identical feature-map elements {np.mean(maps_a == maps_b):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare", allow_abbrev=False)
    p.add_argument("folder", type=Path)
    p.add_argument("--photos", type=Path, help="one subfolder per concept; each one's first photo is added")
    r = sub.add_parser("run", allow_abbrev=False)
    r.add_argument("folder", type=Path)
    r.add_argument("--label", help="the output's name (default: the machine, as uname -m)")
    c = sub.add_parser("compare", allow_abbrev=False)
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.folder, args.photos)
    elif args.step == "run":
        run(args.folder, args.label)
    else:
        compare(args.a, args.b)


if __name__ == "__main__":
    main()
