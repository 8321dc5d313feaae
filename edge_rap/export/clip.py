"""Export an open_clip model to ONNX image and text encoders (fp32 and int8) with manifests the runtime reads.

Runs where torch and open_clip are installed (`pip install 'edge_rap[export,clip]'`) and, for pretrained
weights, where the model hub is reachable or the checkpoint file is at hand; the device only runs the
ONNX files with onnxruntime.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.export.modules import method_as_module
from edge_rap.models.cache import install_model, sha256_file, staging_folder, write_manifest
from edge_rap.output import quoted

log = logging.getLogger(__name__)

# Licences of the weights most often exported; anything else is recorded as "see the model card".
KNOWN_LICENCES = {
    "openai": "MIT (OpenAI CLIP weights)",
    "laion2b_s34b_b79k": "MIT (LAION open_clip weights)",
    "laion2b_s39b_b160k": "MIT (LAION open_clip weights)",
    "datacomp_xl_s13b_b90k": "MIT (open_clip DataComp weights)",
    "webli": "Apache-2.0 (SigLIP weights)",
}


@dataclass(frozen=True)
class ClipExport:
    fp32: Path
    int8: Path


def _load_open_clip(arch: str, pretrained: str | None, config: Path | None):
    try:
        import open_clip
    except ImportError:
        raise EdgeRapError("exporting CLIP needs open_clip_torch: pip install 'edge_rap[export,clip]'") from None
    if config is not None:
        open_clip.add_model_config(config)
    if arch not in open_clip.list_models():
        raise EdgeRapError(f"open_clip has no architecture {quoted(arch)} (see open_clip.list_models())")
    try:
        model = open_clip.create_model(arch, pretrained=pretrained or None)
    except Exception as e:  # hub errors come in many types: say what to do, once
        raise EdgeRapError(
            f"cannot load pretrained weights {arch}/{pretrained} ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
            "run the export where the model hub is reachable, or pass --pretrained PATH to a checkpoint file"
        ) from None
    cfg = open_clip.get_model_preprocess_cfg(model)
    tokenizer_cfg = open_clip.get_model_config(arch) or {}
    hf_tokenizer = tokenizer_cfg.get("text_cfg", {}).get("hf_tokenizer_name")
    return model.eval(), cfg, ("hf:" + hf_tokenizer) if hf_tokenizer else "clip-bpe"


def export_clip(arch: str, pretrained: str | None, cache_root: Path, name: str | None = None,
                config: Path | None = None, calibrate: bool = True) -> ClipExport:
    """Write <name>-fp32/ and <name>-int8/ model folders (image + text encoders) into the cache."""
    import torch

    from edge_rap.export.quantize import Scheme, quantize_image_encoder, quantize_text_encoder
    from edge_rap.perceive.embed import preprocess
    from edge_rap.synth import synthetic_images

    model, cfg, tokenizer = _load_open_clip(arch, pretrained, config)
    tag = Path(pretrained).stem if pretrained and Path(pretrained).exists() else (pretrained or "random")
    name = name or f"clip-{arch}-{tag}".replace("/", "-")
    size = int(cfg["size"][0] if isinstance(cfg["size"], (tuple, list)) else cfg["size"])
    mean, std = [float(v) for v in cfg["mean"]], [float(v) for v in cfg["std"]]
    context = int(model.context_length)

    with torch.no_grad():
        dim = int(model.encode_image(torch.zeros(1, 3, size, size)).shape[-1])
    with staging_folder(cache_root) as work:
        files = {k: work / f"{k}.{p}.onnx" for k in ("image", "text") for p in ("fp32",)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(method_as_module(model, "encode_image"), (torch.zeros(1, 3, size, size),),
                              str(files["image"]),
                              input_names=["image"], output_names=["embedding"],
                              dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}},
                              opset_version=17, dynamo=False)
            torch.onnx.export(method_as_module(model, "encode_text"), (torch.zeros(1, context, dtype=torch.long),),
                              str(files["text"]),
                              input_names=["tokens"], output_names=["embedding"],
                              dynamic_axes={"tokens": {0: "batch"}, "embedding": {0: "batch"}},
                              opset_version=17, dynamo=False)
        calibration = list(preprocess(synthetic_images(32, seed=7), size, np.asarray(mean, np.float32),
                                      np.asarray(std, np.float32)))
        int8 = {"image": work / "image.int8.onnx", "text": work / "text.int8.onnx"}
        quantize_image_encoder(files["image"], int8["image"], calibration)
        quantize_text_encoder(files["text"], int8["text"])
        outputs = []
        for precision, chosen in (("fp32", files), ("int8", int8)):
            folder_name = f"{name}-{precision}"
            staged = work / folder_name
            staged.mkdir()
            manifest_files = {}
            for role, path in chosen.items():
                shutil.move(str(path), staged / path.name)
                manifest_files[role] = {"path": path.name, "sha256": sha256_file(staged / path.name)}
            manifest = {
                "name": folder_name, "role": "image_embedder", "space": folder_name, "precision": precision,
                "files": manifest_files,
                "input": {"size": size, "mean": mean, "std": std, "layout": "NCHW", "resize": "squash"},
                "output": {"kind": "embedding", "dim": dim},
                "text": {"tokenizer": tokenizer, "context_length": context},
                "licence": KNOWN_LICENCES.get(str(pretrained), "see the model card of the weights"),
                "source": f"open_clip {arch} pretrained={pretrained or 'none (random init)'}",
            }
            if precision == "int8":
                manifest["quantization"] = Scheme().record()
            if calibrate:
                from edge_rap.export.calibrate import write_calibrated_manifest

                write_calibrated_manifest(staged, manifest)
            else:
                write_manifest(staged, manifest)
            outputs.append(install_model(staged, cache_root / folder_name))
    log.info("exported %s", json.dumps([str(o) for o in outputs]))
    return ClipExport(outputs[0], outputs[1])
