"""Export an open-vocabulary detector (OWL-ViT / OWLv2) to ONNX through optimum, int8, with a manifest.

Runs where torch, transformers and optimum-onnx are installed (`pip install 'edge_rap[export,detector]'`) and,
for real weights, where the Hugging Face hub is reachable (or the checkpoint is a local folder); the device only
runs the ONNX file with onnxruntime and tokenises with the CLIP vocabulary saved beside it
(`edge_rap.perceive.owl`).

optimum-onnx registers OWL-ViT and OWLv2 for the task "zero-shot-object-detection": one graph, inputs
`pixel_values`, `input_ids`, `attention_mask`, outputs `logits` (image, patches, queries) and `pred_boxes`
(image, patches, 4: cx, cy, w, h normalised to the square model input). `save_tiny_owl` writes a randomly
initialised checkpoint (a few layers, a byte-level vocabulary of a few hundred tokens) so that tests and
machines without network can run the same export path.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

from edge_rap.errors import EdgeRapError
from edge_rap.models.cache import install_model, sha256_file, staging_folder, write_manifest
from edge_rap.output import quoted
from edge_rap.perceive.owl import byte_chars

log = logging.getLogger(__name__)

TASK = "zero-shot-object-detection"
KINDS = ("owlvit", "owlv2")
#: Prompt the vocabulary is wrapped in (OWL-ViT's own examples query "a photo of a cat").
TEMPLATE = "a photo of a {}"
KNOWN_LICENCES = {
    "google/owlvit-base-patch32": "Apache-2.0",
    "google/owlvit-base-patch16": "Apache-2.0",
    "google/owlvit-large-patch14": "Apache-2.0",
    "google/owlv2-base-patch16": "Apache-2.0",
    "google/owlv2-base-patch16-ensemble": "Apache-2.0",
    "google/owlv2-large-patch14-ensemble": "Apache-2.0",
}


@dataclass(frozen=True)
class DetectorExport:
    fp32: Path
    int8: Path


def _needs(what: str):
    raise EdgeRapError(f"exporting a detector needs {what}: pip install 'edge_rap[export,detector]'") from None


# --- a tiny random checkpoint, for tests and offline machines --------------------------------------------------


def tiny_clip_vocabulary(corpus: str, merges: int = 64) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-layout BPE vocabulary (bytes, bytes + '</w>', merges, then the two special tokens last: OWL pools
    the text at the highest token id, which must be end-of-text) with merges learned from a few words."""
    chars = list(byte_chars().values())
    tokens = chars + [c + "</w>" for c in chars]
    words: dict[tuple[str, ...], int] = {}
    byte_char = byte_chars()
    for word in corpus.lower().split():
        symbols = [byte_char[b] for b in word.encode("utf-8")]
        symbols[-1] += "</w>"
        words[tuple(symbols)] = words.get(tuple(symbols), 0) + 1
    learned: list[tuple[str, str]] = []
    for _ in range(merges):
        pairs: dict[tuple[str, str], int] = {}
        for symbols, count in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] = pairs.get(pair, 0) + count
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        learned.append(best)
        merged = {}
        for symbols, count in words.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] = count
        words = merged
    tokens += ["".join(m) for m in learned] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, learned


def save_tiny_owl(folder: Path, kind: str = "owlvit", seed: int = 0, image_size: int = 64, patch: int = 16,
                  full_size: bool = False) -> Path:
    """Write a randomly initialised OWL-ViT / OWLv2 checkpoint (config, weights, tokenizer, image processor).

    `full_size` keeps the architecture's defaults (OWL-ViT B/32 at 768 px, OWLv2 B/16 at 960 px) with random
    weights: the cost of the real model, for timing, and nothing of its quality.
    """
    try:
        import torch
        import transformers
    except ImportError:
        _needs("torch and transformers")
    if kind not in KINDS:
        raise EdgeRapError(f"unknown detector kind {quoted(kind)} (known: {', '.join(KINDS)})")
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = tiny_clip_vocabulary(
        "a photo of a dog cat cup toy mug backpack person sofa plant bottle shoe rocket bag book chair " * 3)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    special = dict(pad_token_id=0, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"])
    prefix = "OwlViT" if kind == "owlvit" else "Owlv2"
    if full_size:
        config = getattr(transformers, f"{prefix}Config")(text_config=special)
        image_size = int(config.vision_config.image_size)
    else:
        text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                    num_attention_heads=2, max_position_embeddings=16, **special)
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      image_size=image_size, patch_size=patch)
        config = getattr(transformers, f"{prefix}Config")(text_config=text, vision_config=vision, projection_dim=32)
    torch.manual_seed(seed)
    model = getattr(transformers, f"{prefix}ForObjectDetection")(config).eval()
    with torch.no_grad():  # small box-head weights: boxes stay near OWL's per-patch prior instead of saturating
        for layer in (model.box_head.dense0, model.box_head.dense1, model.box_head.dense2):
            layer.weight.normal_(0.0, 0.1)
            layer.bias.zero_()
    model.save_pretrained(folder)
    tokenizer = transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="!",
                                           model_max_length=16)
    images = getattr(transformers, f"{prefix}ImageProcessor")(size={"height": image_size, "width": image_size},
                                                              crop_size={"height": image_size, "width": image_size})
    getattr(transformers, f"{prefix}Processor")(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


# --- the export ---------------------------------------------------------------------------------------------------


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub's host answers at all (the hub client would retry for half a minute)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except OSError:
        return False


def _load_config(model: str) -> tuple[object, str, bool]:
    """The checkpoint's config, its source and whether to stay offline; one line when it cannot be had."""
    try:
        from transformers import AutoConfig
    except ImportError:
        _needs("transformers")
    local = Path(model).expanduser()
    if local.exists():
        if not (local / "config.json").exists():
            raise EdgeRapError(f"{local}: not a transformers checkpoint folder (no config.json)")
        return AutoConfig.from_pretrained(str(local)), str(local), True
    online = hub_reachable()
    try:
        return AutoConfig.from_pretrained(model, local_files_only=not online), model, not online
    except Exception as e:  # hub errors come in many types (offline, 404, gated): say what to do, once
        if not online:
            raise EdgeRapError(
                f"the Hugging Face hub is unreachable and {quoted(model)} is not in the local hub cache; run the "
                "export where the hub is reachable, or pass --model DIR with a downloaded checkpoint (--tiny for a "
                "random one)"
            ) from None
        reason = str(e).strip().splitlines()[0][:140] if str(e).strip() else ""
        raise EdgeRapError(f"cannot fetch {quoted(model)} from the Hugging Face hub ({type(e).__name__}: "
                           f"{reason})") from None


def _tokenizer_files(folder: Path) -> tuple[dict[str, int], list[str], dict]:
    """CLIP BPE vocabulary and merges from the saved tokenizer (vocab.json + merges.txt, or tokenizer.json)."""
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    if (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
        vocab = json.loads((folder / "vocab.json").read_text())
        merges = [ln for ln in (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
                  if ln and not ln.startswith("#version")]
    elif (folder / "tokenizer.json").exists():
        model = json.loads((folder / "tokenizer.json").read_text())["model"]
        vocab = model["vocab"]
        merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    else:
        raise EdgeRapError(f"{folder}: the export saved no CLIP tokenizer (vocab.json + merges.txt or tokenizer.json)")
    return vocab, merges, config


def _special_id(vocab: dict[str, int], token, fallback: str) -> int:
    if isinstance(token, dict):  # AddedToken serialised
        token = token.get("content")
    return int(vocab.get(token or fallback, vocab.get(fallback, 0)))


def export_detector(model: str, cache_root: Path, name: str | None = None, template: str = TEMPLATE,
                    opset: int = 18) -> DetectorExport:
    """Export an OWL-ViT / OWLv2 checkpoint (hub id or local folder) to <name>-fp32/ and <name>-int8/ in the cache."""
    if template.count("{}") != 1:
        raise EdgeRapError(f"query template {quoted(template)} must hold one {{}} where the category goes")
    config, source, offline = _load_config(model)
    kind = getattr(config, "model_type", "")
    if kind not in KINDS:
        raise EdgeRapError(f"{model}: a {kind or 'unknown'} model, not an open-vocabulary detector (OWL-ViT / OWLv2)")
    try:
        from optimum.exporters.onnx import main_export
    except ImportError:
        _needs("optimum-onnx")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if not name:
        name = Path(source.rstrip("/")).name.lower()
        name = name if name.startswith("owl") else f"owl-{name}"
    with staging_folder(cache_root) as work:
        exported = work / "optimum"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                main_export(source, exported, task=TASK, opset=opset, device="cpu", do_validation=False,
                            local_files_only=offline)
            except EdgeRapError:
                raise
            except (OSError, ValueError) as e:  # weights unreachable (hub) or unreadable (folder)
                raise EdgeRapError(f"cannot export {model} ({type(e).__name__}: "
                                   f"{str(e).splitlines()[0][:160]})") from None
        if any(exported.glob("*.onnx_data")) or any(exported.glob("*.onnx.data")):
            raise EdgeRapError(f"{model}: the export needs ONNX external data (> 2 GB), which this exporter does not "
                               "pack")
        processor = json.loads((exported / "preprocessor_config.json").read_text())
        vocab, merges, tok_config = _tokenizer_files(exported)
        size = processor.get("size", {})
        size = int(size.get("height", size.get("shortest_edge", 768)) if isinstance(size, dict) else size)
        mean = [float(v) for v in processor.get("image_mean", [0.48145466, 0.4578275, 0.40821073])]
        std = [float(v) for v in processor.get("image_std", [0.26862954, 0.26130258, 0.27577711])]
        context = int(config.text_config.max_position_embeddings)
        int8 = work / "detector.int8.onnx"
        quantize_dynamic(str(exported / "model.onnx"), str(int8), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gemm"])
        outputs = []
        for precision, onnx_file in (("fp32", exported / "model.onnx"), ("int8", int8)):
            folder_name = f"{name}-{precision}"
            staged = work / folder_name
            staged.mkdir()
            shutil.move(str(onnx_file), staged / "detector.onnx")  # int8 was written from it already
            (staged / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
            (staged / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
            files = {role: {"path": path, "sha256": sha256_file(staged / path)}
                     for role, path in (("detector", "detector.onnx"), ("vocab", "vocab.json"),
                                        ("merges", "merges.txt"))}
            manifest = {
                "name": folder_name, "role": "detector", "space": folder_name, "precision": precision,
                "files": files,
                # OWL-ViT squashes the frame to the square input; OWLv2 pads it (bottom and right, grey) first.
                "input": {"size": size, "mean": mean, "std": std, "layout": "NCHW",
                          "resize": "pad" if kind == "owlv2" else "squash"},
                "output": {"format": "owlvit", "boxes": "cxcywh-normalised"},
                "text": {"tokenizer": "clip-bpe", "vocab": "vocab.json", "merges": "merges.txt",
                         "context_length": context, "template": template,
                         "pad_id": _special_id(vocab, tok_config.get("pad_token"), "!"),
                         "bos_id": _special_id(vocab, tok_config.get("bos_token"), "<|startoftext|>"),
                         "eos_id": _special_id(vocab, tok_config.get("eos_token"), "<|endoftext|>")},
                "labels": [],
                "licence": KNOWN_LICENCES.get(model, "see the model card of the weights"),
                "source": f"transformers {kind} {model} via optimum-onnx ({TASK}, opset {opset})"
                          + ("" if precision == "fp32" else ", dynamic int8 MatMul/Gemm weights"),
            }
            write_manifest(staged, manifest)
            outputs.append(install_model(staged, cache_root / folder_name))
    log.info("exported %s", json.dumps([str(o) for o in outputs]))
    return DetectorExport(outputs[0], outputs[1])
