#!/usr/bin/env python3
"""Write a tiny random Gemma-3-style GGUF language model and its matching mmproj, for tests of the VLM path.

    python tools/make_tiny_models.py --out DIR     # DIR/tiny-gemma3.gguf, DIR/mmproj-tiny-gemma3.gguf (~0.5 MB)

The weights are random (seeded): the text they produce is garbage. They prove the plumbing only: llama.cpp
loads the language model, its multimodal library (mtmd) loads the projector and encodes images with it, and
edge_rap's prompt, caches and streaming run for real. The layout is Gemma 3's (the family mtmd wraps in
<start_of_image> ... <end_of_image> and decodes with non-causal attention over image tokens), scaled down:

- language model: architecture `gemma3`, 2 blocks, 64 dims, SentencePiece-style vocabulary of the control
  tokens Gemma's chat template uses, the printable ASCII characters and 256 byte-fallback tokens; Gemma 3's
  chat template in `tokenizer.chat_template`;
- projector: `clip` with `clip.projector_type = gemma3`, a 2-block ViT of 32 dims on 64 x 64 images in 8 x 8
  patches, average-pooled 2 x 2 (`clip.vision.projector.scale_factor`), so each image is 16 tokens.

Needs only numpy and the `gguf` package (`pip install gguf`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edge_rap.generate.chat import GEMMA3_TEMPLATE  # noqa: E402 - Gemma 3's chat template, written into the model

TEXT_FILE = "tiny-gemma3.gguf"
MMPROJ_FILE = "mmproj-tiny-gemma3.gguf"


# sizes: small enough for CI, large enough that an image costs more prefill than a short sentence
TEXT = dict(n_embd=64, n_head=2, n_head_kv=1, head_dim=32, n_ff=128, n_layer=2, n_ctx=4096)
VISION = dict(n_embd=32, n_head=2, n_ff=64, n_layer=2, image_size=64, patch_size=8, merge=2)

# token types of llama.cpp's vocabulary
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, BYTE = 1, 2, 3, 4, 6


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Control tokens (ids as in Gemma: pad 0, eos 1, bos 2, unk 3), printable ASCII, then byte fallback."""
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
              "<end_of_image>", "<image_soft_token>"]
    types = [CONTROL, CONTROL, CONTROL, UNKNOWN, USER_DEFINED, USER_DEFINED, USER_DEFINED, USER_DEFINED,
             USER_DEFINED]
    for c in ["\u2581", "\n"] + [chr(i) for i in range(33, 127)]:
        tokens.append(c)
        types.append(NORMAL)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(BYTE)
    scores = [0.0 if t != NORMAL else -float(i) for i, t in enumerate(types)]
    return tokens, scores, types


def _rand(rng: np.random.Generator, *shape: int, scale: float = 0.3) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def write_text_model(path: Path, seed: int = 0) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    t = TEXT
    tokens, scores, types = vocabulary()
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_name("tiny-gemma3 (random weights, edge_rap test fixture)")
    w.add_description("Random weights in Gemma 3's layout: proves llama.cpp plumbing, not quality")
    w.add_license("apache-2.0")
    w.add_context_length(t["n_ctx"])
    w.add_embedding_length(t["n_embd"])
    w.add_block_count(t["n_layer"])
    w.add_feed_forward_length(t["n_ff"])
    w.add_head_count(t["n_head"])
    w.add_head_count_kv(t["n_head_kv"])
    w.add_key_length(t["head_dim"])
    w.add_value_length(t["head_dim"])
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(0)  # all F32
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    w.add_chat_template(GEMMA3_TEMPLATE)

    d, hd, ff, v = t["n_embd"], t["head_dim"], t["n_ff"], len(tokens)
    ones = lambda n: np.ones(n, dtype=np.float32)  # noqa: E731 - Gemma stores (1 + w) for its RMS norms
    embd = _rand(rng, v, d, scale=0.05)
    embd[np.asarray(types) != NORMAL] = 0.0  # control and byte tokens are never the likeliest: printable garbage
    w.add_tensor("token_embd.weight", embd)
    w.add_tensor("output_norm.weight", ones(d))
    for i in range(t["n_layer"]):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones(d))
        w.add_tensor(p + "attn_q.weight", _rand(rng, t["n_head"] * hd, d))
        w.add_tensor(p + "attn_k.weight", _rand(rng, t["n_head_kv"] * hd, d))
        w.add_tensor(p + "attn_v.weight", _rand(rng, t["n_head_kv"] * hd, d))
        w.add_tensor(p + "attn_output.weight", _rand(rng, d, t["n_head"] * hd))
        w.add_tensor(p + "attn_q_norm.weight", ones(hd))
        w.add_tensor(p + "attn_k_norm.weight", ones(hd))
        w.add_tensor(p + "post_attention_norm.weight", ones(d))
        w.add_tensor(p + "ffn_norm.weight", ones(d))
        w.add_tensor(p + "ffn_gate.weight", _rand(rng, ff, d))
        w.add_tensor(p + "ffn_up.weight", _rand(rng, ff, d))
        w.add_tensor(p + "ffn_down.weight", _rand(rng, d, ff))
        w.add_tensor(p + "post_ffw_norm.weight", ones(d))
    _finish(w)
    return path


def write_mmproj(path: Path, seed: int = 1) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    v, t = VISION, TEXT
    d, ff, p = v["n_embd"], v["n_ff"], v["patch_size"]
    n_patches = (v["image_size"] // p) ** 2
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_name("mmproj-tiny-gemma3 (random weights, edge_rap test fixture)")
    w.add_license("apache-2.0")
    w.add_file_type(0)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "gemma3")
    w.add_uint32("clip.vision.image_size", v["image_size"])
    w.add_uint32("clip.vision.patch_size", p)
    w.add_uint32("clip.vision.embedding_length", d)
    w.add_uint32("clip.vision.feed_forward_length", ff)
    w.add_uint32("clip.vision.block_count", v["n_layer"])
    w.add_uint32("clip.vision.projection_dim", t["n_embd"])
    w.add_uint32("clip.vision.attention.head_count", v["n_head"])
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_bool("clip.use_gelu", True)
    w.add_uint32("clip.vision.projector.scale_factor", v["merge"])

    w.add_tensor("v.patch_embd.weight", _rand(rng, d, 3, p, p))
    w.add_tensor("v.patch_embd.bias", _rand(rng, d))
    w.add_tensor("v.position_embd.weight", _rand(rng, n_patches, d))
    for i in range(v["n_layer"]):
        b = f"v.blk.{i}."
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            w.add_tensor(b + name + ".weight", _rand(rng, d, d))
            w.add_tensor(b + name + ".bias", _rand(rng, d))
        for name in ("ln1", "ln2"):
            w.add_tensor(b + name + ".weight", np.ones(d, dtype=np.float32))
            w.add_tensor(b + name + ".bias", np.zeros(d, dtype=np.float32))
        w.add_tensor(b + "ffn_up.weight", _rand(rng, ff, d))
        w.add_tensor(b + "ffn_up.bias", _rand(rng, ff))
        w.add_tensor(b + "ffn_down.weight", _rand(rng, d, ff))
        w.add_tensor(b + "ffn_down.bias", _rand(rng, d))
    w.add_tensor("v.post_ln.weight", np.ones(d, dtype=np.float32))
    w.add_tensor("v.post_ln.bias", np.zeros(d, dtype=np.float32))
    # numpy (vision dims, text dims): ggml sees ne = [text, vision] and multiplies by its transpose
    w.add_tensor("mm.input_projection.weight", _rand(rng, d, t["n_embd"], scale=0.2))
    w.add_tensor("mm.soft_emb_norm.weight", np.ones(d, dtype=np.float32))
    _finish(w)
    return path


def _finish(w) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_tiny_models(out: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write both files into `out` (created if needed); return (language model, mmproj)."""
    out.mkdir(parents=True, exist_ok=True)
    return write_text_model(out / TEXT_FILE, seed), write_mmproj(out / MMPROJ_FILE, seed + 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--out", required=True, type=Path, help="folder for the two .gguf files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in make_tiny_models(args.out, args.seed):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
