"""Benchmark `edge-rap listen`'s pipeline with the offline defaults (docs/BENCHMARKS.md): silero VAD, whisper
tiny.en, template answers, on spoken questions made here by piper (else espeak-ng) over seeded noise.

  vad        VAD milliseconds per second of audio (30 s of questions, noise and silence)
  asr        whisper's real-time factor: transcription time / utterance length, per question
  answer     end of speech to the start of the spoken answer: audio fed at real time (as a microphone does, so
             the VAD's 400 ms of closing silence counts), answers in template mode, said by each installed voice
             to WAV files (the moment the line's audio is ready to play)

  python tools/bench_listen.py [--questions 6] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_rap.config import load_settings
from edge_rap.household import Household
from edge_rap.speech.asr import Transcriber
from edge_rap.speech.audio import CHUNK, RATE, Audio, chunks, read_wav
from edge_rap.speech.listen import Listener
from edge_rap.speech.tts import EspeakVoice, Speaker, piper_voice
from edge_rap.speech.vad import Segmenter, SileroVad

QUESTIONS = ["Hey robot, where is Mochi", "Hey robot, is Bo home", "Hey robot, what colour is Anya's backpack",
             "Hey robot, where is the red mug", "Hey robot, what does Anya look like", "Hey robot, tell me about Bo"]
PHOTOS = {"mochi": "chelsea", "red_mug": "coffee", "anya": "astronaut", "bo": "rocket"}


def speak_all(lines: list[str], out: Path) -> dict[str, np.ndarray]:
    piper = piper_voice()
    if piper is not None:
        subprocess.run([sys.executable, "-m", "piper", "-m", str(piper.model), "-d", str(out), "--output-dir-naming",
                        "text"], input="\n".join(lines).encode(), check=True, capture_output=True)
    else:
        for line in lines:
            subprocess.run(["espeak-ng", "-w", str(out / f"{line}.wav"), line], check=True)
    return {line: read_wav(out / f"{line}.wav").samples for line in lines}


def noisy(speech: np.ndarray, seed: int) -> Audio:
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.zeros(int(0.8 * RATE)), speech, np.zeros(RATE)]).astype(np.float32)
    return Audio(x + rng.normal(0, 0.1 * np.sqrt(np.mean(speech ** 2)), len(x)).astype(np.float32))


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=len(QUESTIONS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    lines = QUESTIONS[:args.questions]
    with tempfile.TemporaryDirectory(prefix="bench-listen-") as tmp:
        root = Path(tmp)
        speech = speak_all(lines, root)
        audio = [noisy(speech[line], k) for k, line in enumerate(lines)]
        vad, asr = SileroVad(), Transcriber(threads=2)
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
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
