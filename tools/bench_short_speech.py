"""What keeping utterances of 160-250 ms costs (the Segmenter's `barge_in_ms` against its `min_speech_ms`), on
synthetic sounds and espeak-ng speech: how many brisk one-word answers each keeps, and how many non-speech bursts
(clicks, door knocks, noise bursts, claps; tools/bench_listen.py's noises) and fragments of another voice's talk
reach whisper, and what it writes for them.

    .venv/bin/python tools/bench_short_speech.py      (espeak-ng, silero-vad and whisper tiny.en installed)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_listen import NOISES, noise  # noqa: E402

from edge_rap.speech import intents  # noqa: E402
from edge_rap.speech.asr import Transcriber  # noqa: E402
from edge_rap.speech.audio import CHUNK, RATE, read_wav  # noqa: E402
from edge_rap.speech.vad import Segmenter, SileroVad  # noqa: E402

SHORTEST = (160.0, 250.0)  # ms: barge_in_ms, min_speech_ms
TALK = (("en-us", "So then we went to the market and bought some bread and cheese for later."),
        ("en+f3", "The weather today will be cloudy with a chance of rain in the evening."),
        ("en-gb-x-rp", "Yes I know, but we never said we would go there on a Sunday."))


def bursts(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Clicks, door knocks (2-3 damped tones), white/pink/brown noise bursts and claps."""
    def env(n: int, attack: float, decay: float) -> np.ndarray:
        t = np.arange(n) / RATE
        return np.minimum(t / attack, 1) * np.exp(-t / decay)

    out = {}
    for k in range(6):
        x = np.zeros(int(0.05 * RATE))
        x[0], x[1:20] = 0.9, rng.normal(0, .3, 19)
        out[f"click{k}"] = x
    for f in (120, 180, 250, 400):
        n = int(.12 * RATE)
        one = np.concatenate([np.sin(2 * np.pi * f * np.arange(n) / RATE) * env(n, .002, .03) * .6,
                              np.zeros(int(.03 * RATE))])
        for times in (2, 3):
            out[f"knock{f}x{times}"] = np.concatenate([one] * times)
    for kind in ("white", "pink", "brown"):
        for ms in (80, 150, 200, 250, 350):
            n = int(ms / 1000 * RATE)
            x = rng.normal(0, 1, n)
            if kind == "pink":
                spectrum = np.fft.rfft(x)
                x = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.arange(len(spectrum)), 1)), n)
            if kind == "brown":
                x = np.cumsum(x) - np.cumsum(x).mean()
            out[f"{kind}{ms}"] = x / np.abs(x).max() * 0.5 * np.hanning(n) ** 0.3
    for ms in (100, 200):
        n = int(ms / 1000 * RATE)
        out[f"clap{ms}"] = rng.normal(0, .5, n) * env(n, .001, .02)
    return out


def espeak(voice: str, speed: int, text: str, wav: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True)
    return read_wav(wav).samples


def main() -> int:
    vad, transcribe = SileroVad(), Transcriber()
    rng = np.random.default_rng(7)

    def kept(x: np.ndarray) -> dict[float, list]:
        """The utterances kept at each shortest length."""
        out = {}
        for ms in SHORTEST:
            vad.reset()
            out[ms] = list(Segmenter(vad, min_speech_ms=ms).utterances(
                [x[i:i + CHUNK] for i in range(0, len(x) - CHUNK + 1, CHUNK)]))
        return out

    def padded(x: np.ndarray, hiss: float = 0.0) -> np.ndarray:
        y = np.concatenate([np.zeros(int(0.8 * RATE)), x, np.zeros(RATE)]).astype(np.float32)
        return y + rng.normal(0, hiss, len(y)).astype(np.float32) if hiss else y

    sounds = bursts(rng)
    with tempfile.TemporaryDirectory() as tmp:
        words = {f"{w}|{v}|{s}": espeak(v, s, w, Path(tmp) / "w.wav") for v in ("en-us", "en", "en-gb-x-rp", "en+f3",
                 "en-us+m3") for s in (175, 220, 260, 300) for w in ("No.", "Yes.", "Yep.", "Nope.")}
        talk = [espeak(v, 175, line, Path(tmp) / "t.wav") for v, line in TALK]
    counts = {ms: [0, 0] for ms in SHORTEST}  # non-speech bursts: kept, written as words
    for x in sounds.values():
        for hiss in (0.0, 0.003):
            for ms, us in kept(padded(x, hiss)).items():
                texts = [transcribe(u.samples).text for u in us]
                counts[ms][0] += len(us)
                counts[ms][1] += sum(not intents.says_nothing(t) for t in texts)
    print(f"{2 * len(sounds)} bursts (kept, transcribed as words):", counts)
    answered = {ms: 0 for ms in SHORTEST}
    for x in words.values():
        for ms, us in kept(padded(x)).items():
            answered[ms] += any(intents.is_answer(transcribe(u.samples).text) for u in us)
    print(f"{len(words)} espeak-ng yes/no words heard as an answer:", answered)
    chatter = np.concatenate(talk)
    level = np.sqrt(np.mean(talk[0] ** 2))
    for kind, snr in NOISES.items():
        x = np.concatenate([level / 10 ** (snr / 20) * noise(kind, 3 * RATE, np.random.default_rng(seed), chatter)
                            for seed in range(3)]).astype(np.float32)
        print(f"{kind} (9 s at {snr:.0f} dB under speech's level): kept", {ms: len(us) for ms, us in kept(x).items()})
    frag = {ms: [0, 0, []] for ms in SHORTEST}  # fragments of talk: kept, as words, heard as a yes or no
    for t in talk:
        for ms_long in (160, 200, 240, 300):
            n = int(ms_long / 1000 * RATE)
            for s in range(int(0.3 * RATE), len(t) - n, int(0.37 * RATE)):
                x = np.concatenate([np.zeros(int(.6 * RATE)), t[s:s + n] * np.hanning(n) ** 0.1,
                                    np.zeros(int(.8 * RATE))]).astype(np.float32)
                for ms, us in kept(x).items():
                    for u in us:
                        text = transcribe(u.samples).text
                        frag[ms][0] += 1
                        frag[ms][1] += not intents.says_nothing(text)
                        frag[ms][2] += [text] if intents.is_answer(text) else []
    print("fragments of talk (kept, as words, heard as a yes or no):", frag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
