"""Benchmark `edge-rap listen`'s pipeline with the offline defaults (docs/BENCHMARKS.md): silero VAD, whisper
tiny.en, template answers, on spoken questions made here by piper (else espeak-ng) over seeded noise.

  vad        VAD milliseconds per second of audio (30 s of questions, noise and silence)
  asr        whisper's real-time factor: transcription time / utterance length, per question
  answer     end of speech to the start of the spoken answer: audio fed at real time (as a microphone does, so
             the VAD's 400 ms of closing silence counts), answers in template mode, said by each installed voice
             to WAV files (the moment the line's audio is ready to play)
  names      the right concept named, per voice: ten questions after the wake phrase, each naming one of four
             remembered concepts, said by piper's joe (the voice the recogniser's settings were tuned on) and by
             espeak-ng voices and speeds/pitches never tuned on, each question under one of four noises (white +
             brown, pink, mains hum, another voice's chatter) at 15-20 dB; `--engines` picks the synthesisers
             (piper, espeak, and Debian's flite and festival voices, also never tuned on; one not installed is
             skipped, said so)
  names --choosing   the set to choose settings on, never the held-out voices: joe and four other espeak-ng
             voices, every question under every noise (and none, and pink and white at 10 dB), and questions that
             name no concept (a concept named in one is a false name)

  python tools/bench_listen.py [latency [--questions 6] | names [--beam 5] [--choosing | --engines
                               piper,espeak,flite,festival]] [--window S] [--asr auto|tiny.en|NAME|DIR] [--json]

An option one measure alone uses is refused with the other, where it would be ignored.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_rap.config import load_settings
from edge_rap.household import Household
from edge_rap.speech.asr import AUTO, WINDOW_S, Transcriber
from edge_rap.speech.audio import CHUNK, RATE, Audio, chunks, read_wav
from edge_rap.speech.listen import Listener
from edge_rap.speech.tts import EspeakVoice, Speaker, piper_voice
from edge_rap.speech.vad import Segmenter, SileroVad

QUESTIONS = ["Hey robot, where is Mochi", "Hey robot, is Bo home", "Hey robot, what colour is Anya's backpack",
             "Hey robot, where is the red mug", "Hey robot, what does Anya look like", "Hey robot, tell me about Bo"]
PHOTOS = {"mochi": "chelsea", "red_mug": "coffee", "anya": "astronaut", "bo": "rocket"}


# The questions of tests/test_listen.py: (line, the concept it names).
NAMED = [("Hey robot, where is Mochi", "mochi"), ("Hey robot, is Bo home", "bo"),
         ("Hey robot, what colour is Anya's backpack", "anya"), ("Hey robot, where is the red mug", "red_mug"),
         ("Hey robot, have you seen Anya today", "anya"), ("Hey robot, tell me about Mochi", "mochi"),
         ("Hey robot, where did Bo go", "bo"), ("Hey robot, is the red mug in the kitchen", "red_mug"),
         ("Hey robot, when did you last see Mochi", "mochi"), ("Hey robot, what does Anya look like", "anya")]


@dataclass(frozen=True)
class Voice:
    """A voice of a command-line synthesiser: `argv` says the line ("{line}", else the line on stdin) into the WAV
    "{wav}"; `name` is what the engine's voice list calls it, where it has one (LISTS)."""
    engine: str
    name: str
    argv: tuple[str, ...]

    def say(self, line: str, wav: Path) -> None:
        subprocess.run([a.replace("{line}", line).replace("{wav}", str(wav)) for a in self.argv],
                       input=line.encode(), check=True, capture_output=True)


def espeak(*args: str) -> Voice:
    return Voice("espeak", " ".join(args), ("espeak-ng", *args, "-w", "{wav}", "{line}"))


def flite(name: str) -> Voice:
    return Voice("flite", name, ("flite", "-voice", name, "-t", "{line}", "-o", "{wav}"))


def festival(name: str) -> Voice:
    return Voice("festival", name, ("text2wave", "-eval", f"(voice_{name})", "-o", "{wav}"))


# Held-out voices, never used to tune anything: espeak-ng's, and Debian's flite and festival (festvox-kallpc16k,
# -kdlpc16k, -us-slt-hts) voices in English.
HELD_OUT = {"en-us": espeak("-v", "en-us"),
            "en-gb-rp slow high": espeak("-v", "en-gb-x-rp", "-s", "140", "-p", "70"),
            "en-gb-scotland fast low": espeak("-v", "en-gb-scotland", "-s", "195", "-p", "30"),
            "en-us+f3": espeak("-v", "en-us+f3", "-s", "160"),
            "en-029": espeak("-v", "en-029", "-s", "165", "-p", "45"),
            **{f"flite {name}": flite(name) for name in ("kal", "kal16", "awb", "rms", "slt")},
            "festival kal": festival("kal_diphone"), "festival ked": festival("ked_diphone"),
            "festival slt hts": festival("cmu_us_slt_arctic_hts")}
ENGINES = ["piper", "espeak", "flite", "festival"]
# The engines that say which voices they have: the command, and its stdin.
LISTS = {"flite": (["flite", "-lv"], ""), "festival": (["festival", "--pipe"], "(print (voice.list))")}
# The choosing set: other espeak-ng voices, other seeds, every question under every noise, and no-name lines.
CHOOSING = {"en-gb 150": espeak("-v", "en-gb", "-s", "150"),
            "gbclan fast high": espeak("-v", "en-gb-x-gbclan", "-s", "180", "-p", "65"),
            "us-nyc low": espeak("-v", "en-us-nyc", "-s", "170", "-p", "35"),
            "gbcwmd+m3": espeak("-v", "en-gb-x-gbcwmd+m3", "-s", "155")}
NO_NAME = ["Hey robot, what is on the table", "Hey robot, is the front door open", "Hey robot, what time is it",
           "Hey robot, who is at the door", "Hey robot, is anyone home", "Hey robot, what did you see this morning",
           "So then we went to the market and bought some apples", "I think it is going to rain later today"]
CHATTER = "So then we went to the market and bought some apples and a loaf of bread for the weekend"


def speak_all(lines: list[str], out: Path) -> dict[str, np.ndarray]:
    """Each line said by piper's joe (else espeak-ng). Piper's noise scales are 0, so that a rerun hears the same
    audio: by default its graph draws unseeded noise."""
    piper = piper_voice()
    if piper is not None:
        subprocess.run([sys.executable, "-m", "piper", "-m", str(piper.model), "-d", str(out), "--output-dir-naming",
                        "text", "--noise-scale", "0", "--noise-w-scale", "0"], input="\n".join(lines).encode(),
                       check=True, capture_output=True)
    else:
        for line in lines:
            subprocess.run(["espeak-ng", "-w", str(out / f"{line}.wav"), line], check=True)
    return {line: read_wav(out / f"{line}.wav").samples for line in lines}


def noisy(speech: np.ndarray, seed: int) -> Audio:
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.zeros(int(0.8 * RATE)), speech, np.zeros(RATE)]).astype(np.float32)
    return Audio(x + rng.normal(0, 0.1 * np.sqrt(np.mean(speech ** 2)), len(x)).astype(np.float32))


def noise(kind: str, n: int, rng: np.random.Generator, chatter: np.ndarray) -> np.ndarray:
    """Unit-power noise of one kind."""
    if kind == "clean":
        return np.zeros(n, np.float32)
    if kind == "white":
        x = rng.normal(0, 1, n)
    elif kind == "white+brown":
        walk = np.cumsum(rng.normal(0, 1, n))
        walk -= np.convolve(walk, np.ones(4001) / 4001, mode="same")
        x = rng.normal(0, 1, n) + 20 * walk / np.abs(walk).max()
    elif kind == "pink":
        spectrum = np.fft.rfft(rng.normal(0, 1, n))
        x = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.arange(len(spectrum)), 1)), n)
    elif kind == "hum":
        t = np.arange(n) / RATE
        x = sum(np.sin(2 * np.pi * 50 * h * t + rng.uniform(0, 6)) / h for h in (1, 2, 3, 5)) + rng.normal(0, .05, n)
    else:  # another voice talking underneath
        x = np.resize(np.roll(chatter, int(rng.integers(len(chatter)))), n)
    return (x / np.sqrt(np.mean(x ** 2))).astype(np.float32)


NOISES = {"white+brown": 20.0, "pink": 15.0, "hum": 15.0, "chatter": 15.0}  # kind: SNR in dB
CHOOSING_NOISES = {"clean": 0.0, **NOISES, "pink 10 dB": 10.0, "white 10 dB": 10.0}


def under(speech: np.ndarray, kind: str, seed: int, chatter: np.ndarray, snr_db: float | None = None) -> Audio:
    """0.8 s of quiet, the speech, 1 s of quiet, the noise under all of it at its SNR."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.zeros(int(0.8 * RATE)), speech, np.zeros(RATE)]).astype(np.float32)
    level = np.sqrt(np.mean(speech ** 2) / 10 ** ((NOISES[kind] if snr_db is None else snr_db) / 10))
    return Audio(x + level * noise(kind.split(" ")[0], len(x), rng, chatter))


def say_all(lines: list[str], voice: Voice, out: Path) -> dict[str, np.ndarray]:
    out.mkdir(exist_ok=True)
    for k, line in enumerate(lines):
        voice.say(line, out / f"{k}.wav")
    return {line: read_wav(out / f"{k}.wav").samples for k, line in enumerate(lines)}


def missing(voice: Voice) -> str | None:
    """Why the voice cannot be said on this machine (its program, or the voice, not installed), else None."""
    if shutil.which(voice.argv[0]) is None:
        return f"{voice.argv[0]} not installed"
    if voice.engine not in LISTS:
        return None
    argv, stdin = LISTS[voice.engine]
    listed = subprocess.run(argv, input=stdin.encode(), capture_output=True).stdout.decode(errors="replace")
    return None if voice.name in re.split(r"[\s()]+", listed) else f"{voice.engine} has no voice {voice.name}"


def name_accuracy(root: Path, beam: int, choosing: bool = False, window_s: int = WINDOW_S, model: str = AUTO,
                  engines: tuple[str, ...] = ("piper", "espeak")) -> dict:
    """The right concept named (first), per voice and per noise, and what was heard when not. Held out: each
    question under one of the four noises, said by the voices of `engines` (one not installed is skipped, said
    so); `choosing`: the choosing set, every question under every noise, and the no-name lines that came out
    naming a concept (false names)."""
    no_name = NO_NAME if choosing else []
    lines = [q for q, _ in NAMED] + no_name + [CHATTER]
    voices = {}
    if piper_voice() is not None and (choosing or "piper" in engines):
        voices["piper joe" if choosing else "piper joe (tuned on)"] = speak_all(lines, root / "joe")
    elif "piper" in engines:
        print("piper joe skipped: piper or its voice not installed", file=sys.stderr)
    chosen = CHOOSING if choosing else {k: v for k, v in HELD_OUT.items() if v.engine in engines}
    for label, voice in chosen.items():
        why = missing(voice)
        if why is not None:
            print(f"{label} skipped: {why}", file=sys.stderr)
            continue
        voices[label] = say_all(lines, voice, root / label.replace(" ", "-"))
    noises = CHOOSING_NOISES if choosing else NOISES
    per_voice, per_noise, false, misses = {}, {k: [0, 0] for k in noises}, [0, 0], []
    asr, vad = Transcriber(model, threads=2, beam=beam, window_s=window_s, models=load_settings().models), SileroVad()
    asr_ms = []
    with household(root) as home:
        for label, said in voices.items():
            listener = Listener(home, asr, vad, None, "hey robot")
            right = asked = 0
            for k, line in enumerate(lines[:-1]):
                name = dict(NAMED).get(line)
                # (kind, seed, SNR): the held-out set's seeds and noises as first measured
                plan = [(kind, 1000 + 37 * k + j, snr) for j, (kind, snr) in enumerate(noises.items())] if choosing \
                    else [(list(NOISES)[k % len(NOISES)], k, None)]
                for kind, seed, snr in plan:
                    heard = list(listener.turns(chunks(under(said[line], kind, seed, said[CHATTER], snr))))
                    named = [t.reply.names for t in heard if t.triggered]
                    asr_ms += [t.timings["asr_ms"] for t in heard if "asr_ms" in t.timings]
                    if name is None:  # a line that names no concept
                        false[0] += any(named)
                        false[1] += 1
                        if any(named):
                            misses.append(f"{label} / {kind}: {line!r} named {named}: {[t.transcript for t in heard]}")
                        continue
                    ok = len(named) == 1 and named[0][:1] == [name]
                    right, asked = right + ok, asked + 1
                    per_noise[kind][0] += ok
                    per_noise[kind][1] += 1
                    if not ok:
                        misses.append(f"{label} / {kind}: {line!r} heard {[t.transcript for t in heard]}")
            per_voice[label] = f"{right}/{asked}"
    report = {"names_right": per_voice, "by_noise": {k: f"{a}/{b}" for k, (a, b) in per_noise.items()},
              "asr_ms_median": round(statistics.median(asr_ms), 1) if asr_ms else None}
    if choosing:
        report["false_names"] = f"{false[0]}/{false[1]}"
    return {**report, "misses": misses}


def household(root: Path) -> Household:
    from edge_rap.export.calibrate import sample_photo_bank
    from PIL import Image

    settings = load_settings(memory=str(root / "memory"))
    bank = sample_photo_bank()
    home = Household(settings, prepare=True)
    for name, photo in PHOTOS.items():
        path = root / f"{photo}.png"
        Image.fromarray(bank[photo]).save(path)
        home.memory.remember(name, [path], f"the household's {name}", "")
    return home


def engines(text: str) -> tuple[str, ...]:
    """--engines' comma-separated list, each one of ENGINES."""
    chosen = tuple(e.strip() for e in text.split(",") if e.strip())
    unknown = [e for e in chosen if e not in ENGINES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"not an engine: {','.join(unknown) or repr(text)} "
                                         f"(one of {','.join(ENGINES)})")
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("measure", nargs="?", choices=["latency", "names"], default="latency")
    parser.add_argument("--questions", type=int, help=f"latency: how many questions (default {len(QUESTIONS)})")
    parser.add_argument("--beam", type=int, help="names: whisper's beam size (default 5)")
    parser.add_argument("--choosing", action="store_true", help="names: the set to choose settings on")
    parser.add_argument("--engines", type=engines, metavar="E,E", help="names, held out: the synthesisers "
                        f"that say the questions, of {','.join(ENGINES)} (default: piper,espeak)")
    parser.add_argument("--window", type=int, default=WINDOW_S, help="whisper's window in seconds")
    parser.add_argument("--asr", default=AUTO, metavar="auto|tiny.en|NAME|DIR",
                        help="the whisper model, as listen's --asr")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.engines and args.measure != "names":
        parser.error("--engines: only for `names` (latency's questions are said by piper, else espeak-ng)")
    if args.engines and args.choosing:
        parser.error("--engines: only for the held-out names set (the choosing set's voices are fixed)")
    for option, measure in (("beam", "names"), ("choosing", "names"), ("questions", "latency")):
        value = getattr(args, option)  # (`not in (None, False)` took --beam 0 for not given: 0 == False)
        if value is not None and value is not False and args.measure != measure:  # (it was taken, and ignored)
            parser.error(f"--{option}: only for `{measure}`, not `{args.measure}`")
    if args.measure == "names":
        with tempfile.TemporaryDirectory(prefix="bench-names-") as tmp:
            return show(name_accuracy(Path(tmp), 5 if args.beam is None else args.beam, args.choosing, args.window,
                                      args.asr, args.engines or ("piper", "espeak")), args.json)
    lines = QUESTIONS if args.questions is None else QUESTIONS[:args.questions]
    with tempfile.TemporaryDirectory(prefix="bench-listen-") as tmp:
        root = Path(tmp)
        speech = speak_all(lines, root)
        audio = [noisy(speech[line], k) for k, line in enumerate(lines)]
        vad, asr = SileroVad(), Transcriber(args.asr, threads=2, window_s=args.window,
                                                 models=load_settings().models)
        stream = np.concatenate([a.samples for a in audio] * 4)[:30 * RATE]
        segmenter = Segmenter(vad)
        started = time.perf_counter()
        n_chunks = sum(1 for _ in chunks(Audio(stream)))  # the chunking alone, taken off below
        chunk_s = time.perf_counter() - started
        started = time.perf_counter()
        list(segmenter.utterances(chunks(Audio(stream))))
        vad_ms_per_s = (1000 * (time.perf_counter() - started - chunk_s)) / (n_chunks * CHUNK / RATE)
        rtf, asr_ms = [], []
        with household(root) as home:
            names = [c.name for c in home.concepts()]
            for a in audio:
                for u in Segmenter(vad).utterances(chunks(a)):
                    t = asr(u.samples, names, "hey robot")
                    rtf.append(t.ms / 1000 / t.audio_s)
                    asr_ms.append(t.ms)
            voices = {"espeak-ng": EspeakVoice()}
            if piper_voice() is not None:
                voices["piper"] = piper_voice()
            to_answer: dict[str, list[float]] = {}
            for label, voice in voices.items():
                speaker = Speaker(voice, root / f"said-{label}")
                listener = Listener(home, asr, vad, speaker, "hey robot")
                to_answer[label] = [turn.timings["speech_end_to_answer_start_ms"] for a in audio
                                    for turn in listener.turns(chunks(a, realtime=True)) if turn.triggered]
                speaker.flush(60)
                speaker.close()
    report = {"vad_ms_per_audio_s": round(vad_ms_per_s, 2), "asr_rtf_median": round(statistics.median(rtf), 3),
              "asr_ms_median": round(statistics.median(asr_ms), 1),
              "speech_end_to_answer_start_ms_median": {k: round(statistics.median(v), 1) for k, v in to_answer.items()},
              "answered": {k: f"{len(v)}/{len(audio)}" for k, v in to_answer.items()}}
    return show(report, args.json)


def show(report: dict, as_json: bool) -> int:
    if as_json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}" if not isinstance(value, list) else f"{key}:\n  " + "\n  ".join(value))
    return 0


if __name__ == "__main__":
    sys.exit(main())
