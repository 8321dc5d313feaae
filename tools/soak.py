"""Soak `edge-rap run --serve --voice` under everything a household does at once (docs/BENCHMARKS.md).

A daemon watches an MJPEG camera this script serves (the household scene looped, from the demo's sample photos
or from `--photos DIR`), answers spoken questions from espeak-ng WAVs fed in as its microphone, and serves the
companion API; meanwhile, in parallel:
  api     one API call a second: list, add a concept with a photo, add photos, rename, forget, a taken name,
          recognize, ask (with a photo, without, streamed), events, snapshots, thumbnails (`?size=`), stats, the page
  cli     one CLI command every 10 s on the same memory: remember, add-views, rename, forget, events, ask, concepts,
          and a probe: a photo the CLI remembers must be recognised by the daemon's API at once, and not once forgotten
  voice   where is X, is anyone home, what do you see; remember this, this is also X, forget it, each with its yes
  camera  the camera goes away twice (40 s, 15 s) and comes back
  restart SIGTERM at 25 % and 50 % of the run, kill -9 at 75 %, each followed by a new daemon (not with --steady,
          which keeps one daemon and its camera all along, to see whether its resources level off)
Every 10 s it samples the daemon's RSS, open fds, threads, child processes, the sqlite files' sizes, temporary
files (its TMPDIR, the memory folder), snapshots and spoken WAVs (`WORK/samples.jsonl`, to watch while it runs);
its $HOME is a folder of its own, where nothing may be written. A
request over 30 s is a stall: the daemon's threads are dumped (SIGUSR1) into its stderr. At the end
(`WORK/report.json`): tracebacks and warnings on the daemon's stderr, unexpected answers, concepts announced after
they were forgotten, events of forgotten concepts, a WAL a reader keeps from being checkpointed, sqlite integrity,
orphan or missing photos; exit status 1 when any.

  nice -n 10 python tools/soak.py [--minutes 18] [--work DIR] [--photos DIR] [--steady] [--json]
  python tools/soak.py daemon --wavs DIR -- run ...   (what the soak starts: `run` with WAVs as microphone)
"""

from __future__ import annotations

import argparse
import collections
import http.server
import json
import os
import random
import re
import signal
import socketserver
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

STALL_S = 30.0
SAMPLE_S = 10.0
QUESTIONS = (  # (file, what is said, the silence after it): {0} is the scene's first concept; a command's yes
    # comes within the 10 s of audio the device waits for it
    ("01-where", "Hey robot, where is {0}?", 15.0),
    ("02-anyone", "Hey robot, is anyone home?", 15.0),
    ("03-see", "Hey robot, what do you see?", 15.0),
    ("04-remember", "Hey robot, remember this as pumpkin.", 3.0),  # whisper tiny hears "as Teddy" as "has to be"
    ("05-yes", "Yes.", 15.0),
    ("06-also", "Hey robot, this is also {0}.", 3.0),
    ("07-yes", "Yes.", 15.0),
    ("08-forget", "Hey robot, forget pumpkin.", 3.0),
    ("09-yes", "Yes.", 15.0),
)


# ---------------------------------------------------------------- the daemon side: WAVs as the microphone

class WavMicrophone:
    """Stands in for `edge_rap.speech.audio.Microphone`: the folder's WAVs in turn, each followed by the silence
    its name ends with (`01-where-15.0.wav`), in real time, round and round until `close()`. (`waiting`: never
    called: its audio never stops.)"""

    folder: Path = Path(".")

    def __init__(self, device=None, reopen: bool = False, waiting=None):
        from edge_rap.speech.audio import read_audio

        self._closed = threading.Event()
        self._audio = [(read_audio(p), float(p.stem.rsplit("-", 1)[1])) for p in sorted(self.folder.glob("*.wav"))]

    def chunks(self):
        from edge_rap.speech.audio import RATE, Audio, chunks

        while not self._closed.is_set():
            for audio, pause_s in self._audio:
                silence = np.zeros(int(pause_s * RATE), np.float32)
                for chunk in chunks(Audio(np.concatenate([audio.samples, silence])), realtime=True):
                    if self._closed.is_set():
                        return
                    yield chunk

    def close(self) -> None:
        self._closed.set()


def daemon_main(argv: list[str]) -> int:
    """`run` with the WAVs as its microphone."""
    import edge_rap.speech.audio
    from edge_rap import cli

    parser = argparse.ArgumentParser(prog="soak.py daemon", allow_abbrev=False)
    parser.add_argument("--wavs", type=Path, required=True)
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    WavMicrophone.folder = args.wavs
    edge_rap.speech.audio.Microphone = WavMicrophone
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return cli.main(rest)


# ---------------------------------------------------------------- the camera: an MJPEG stream of the scene

class Camera:
    """The household scene, looped, as `multipart/x-mixed-replace` JPEGs at 10 FPS; `down(s)` closes it (every
    connection and the port) for s seconds, as an IP camera that reboots."""

    def __init__(self, photos: dict[str, np.ndarray], background: np.ndarray, names: list[str], unknown: str):
        import cv2

        from edge_rap.daemon.scenario import household_scenario

        self.scenario = household_scenario(names, unknown, 60.0)
        self.photos, self.background = photos, cv2.resize(background, self.scenario.size)
        self.up = threading.Event()
        self.started = time.monotonic()
        self.port = 0
        self._server: socketserver.TCPServer | None = None
        self._frames: dict[int, bytes] = {}
        self.open()

    def frame(self) -> bytes:
        import cv2

        from edge_rap.daemon.scenario import render_frame

        tick = int((time.monotonic() - self.started) * 10) % int(self.scenario.length_s * 10)
        if tick not in self._frames:
            rgb = render_frame(self.scenario, self.photos, self.background, tick / 10)
            self._frames[tick] = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]))[1].tobytes()
        return self._frames[tick]

    def open(self) -> None:
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while camera.up.is_set():
                        jpeg = camera.frame()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                        time.sleep(0.1)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self.up.set()
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def down(self, seconds: float) -> None:
        self.up.clear()
        self._server.shutdown()
        self._server.server_close()
        time.sleep(seconds)
        self.open()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"


# ---------------------------------------------------------------- the record

@dataclass
class Record:
    """Everything the soak saw, written as JSON at the end."""

    samples: list[dict] = field(default_factory=list)
    calls: collections.Counter = field(default_factory=collections.Counter)
    unexpected: list[dict] = field(default_factory=list)
    stalls: list[dict] = field(default_factory=list)
    slowest: list[dict] = field(default_factory=list)
    seconds: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    timeline: list[dict] = field(default_factory=list)  # (wall, what): adds, forgets, renames, restarts
    findings: list[str] = field(default_factory=list)

    def note(self, what: str, **more) -> None:
        self.timeline.append({"wall": time.time(), "what": what, **more})

    def call(self, actor: str, what: str, status, seconds: float, expected: bool, detail: str = "") -> None:
        self.calls[f"{actor} {what} {status}"] += 1
        self.seconds[f"{actor} {what}"].append(seconds)
        row = {"wall": time.time(), "actor": actor, "what": what, "status": status, "s": round(seconds, 2),
               "detail": detail[:300]}
        if not expected:
            self.unexpected.append(row)
        if seconds > STALL_S:
            self.stalls.append(row)
        self.slowest = sorted([*self.slowest, row], key=lambda r: -r["s"])[:10]


# ---------------------------------------------------------------- the soak

class Soak:
    def __init__(self, work: Path, minutes: float, photos_dir: Path | None, steady: bool = False):
        self.work, self.seconds, self.steady = work, minutes * 60, steady
        self.memory, self.tmp = work / "memory", work / "tmp"
        self.snapshots, self.speech, self.wavs = work / "snapshots", work / "speech", work / "wavs"
        self.home = work / "home"  # $HOME: what the daemon and the CLI write outside their folders shows there
        for d in (self.tmp, self.wavs, work / "photos", self.home):
            d.mkdir(parents=True, exist_ok=True)
        self.record = Record()
        self.stop = threading.Event()
        self.restarting = threading.Event()  # set from a daemon's end until the next one serves
        self.env = {**os.environ, "TMPDIR": str(self.tmp), "HOME": str(self.home),
                    "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                    "EDGE_RAP_MODELS": os.environ.get("EDGE_RAP_MODELS",
                                                      str(Path.home() / ".local/share/edge-rap/models"))}
        self.photos = self._photos(photos_dir)
        self.daemon: subprocess.Popen | None = None
        self.daemon_lock = threading.Lock()
        self.generation = 0
        self.port = _free_port()
        self.counter = 0
        self.counter_lock = threading.Lock()
        self.started = time.time()

    # -- set-up

    def _photos(self, photos_dir: Path | None) -> dict[str, Path]:
        """name -> photo file: the scene's three concepts, the unknown object, spare photos to add."""
        from PIL import Image

        out = {}
        if photos_dir is not None:
            files = sorted(p for p in photos_dir.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            if len(files) < 9:
                raise SystemExit(f"{photos_dir}: needs at least 9 photos")
            for k, p in enumerate(random.Random(0).sample(files, 9)):
                rgb = Image.open(p).convert("RGB")
                rgb.thumbnail((1024, 1024))
                out[f"p{k}"] = self.work / "photos" / f"p{k}.jpg"
                rgb.save(out[f"p{k}"])
            return out
        from edge_rap.export.calibrate import sample_photo_bank

        bank = sample_photo_bank()
        for name in ("chelsea", "coffee", "rocket", "coins", "astronaut", "camera", "grace_hopper", "brick", "moon"):
            out[name] = self.work / "photos" / f"{name}.png"
            Image.fromarray(bank[name]).save(out[name])
        return out

    def setup(self) -> None:
        import cv2

        names = list(self.photos)
        self.scene, self.unknown, self.spares, self.probe = names[:3], names[3], names[4:7], names[8]
        for k, name in enumerate(self.scene):
            self.cli("remember", name, str(self.photos[name]), "--description", f"soak concept {k}",
                     "--category", "thing", check=True)
        for stem, text, pause_s in QUESTIONS:
            subprocess.run(["espeak-ng", "-w", str(self.wavs / f"{stem}-{pause_s}.wav"), text.format(self.scene[0])],
                           check=True)
        arrays = {n: cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for n, p in self.photos.items()}
        self.camera = Camera(arrays, arrays[names[7]], self.scene, self.unknown)
        (self.work / "run.toml").write_text(
            '[daemon]\ncooldown = 5\nfps-cap = 2\n\n[[camera]]\nname = "door"\n'
            f'source = "{self.camera.url}"\n')

    # -- processes

    def cli(self, *argv: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "edge_rap.cli", *argv, "--memory", str(self.memory)]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout, check=check)

    def start_daemon(self) -> None:
        self.generation += 1
        out = open(self.work / f"daemon-{self.generation}.out", "w")
        err = self.work / f"daemon-{self.generation}.err"
        cmd = [sys.executable, str(Path(__file__).resolve()), "daemon", "--wavs", str(self.wavs),
               "--", "run", "--config", str(self.work / "run.toml"), "--memory", str(self.memory), "--json",
               "--serve", str(self.port), "--voice", "--speak-to", str(self.speech), "--snapshots",
               str(self.snapshots)]
        with self.daemon_lock:
            self.daemon = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=_stamped, args=(self.daemon.stderr, err), daemon=True).start()
        self.record.note("daemon started", pid=self.daemon.pid, generation=self.generation)
        self._wait_healthy(120)

    def _wait_healthy(self, seconds: float) -> None:
        import httpx

        until = time.monotonic() + seconds
        while time.monotonic() < until:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.record.findings.append(f"daemon {self.generation} not healthy {seconds:.0f} s after its start")

    def end_daemon(self, how: int) -> None:
        with self.daemon_lock:
            proc = self.daemon
        t = time.monotonic()
        proc.send_signal(how)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            self.record.findings.append(f"daemon {self.generation} still running 60 s after signal {how}")
            proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
            proc.kill()
            rc = proc.wait()
        took = time.monotonic() - t
        self.record.note("daemon ended", signal=how, rc=rc, seconds=round(took, 1), generation=self.generation)
        if how == signal.SIGTERM and (rc != 0 or took > 35):
            self.record.findings.append(f"daemon {self.generation}: SIGTERM gave exit {rc} after {took:.1f} s")

    def dump_threads(self, why: str) -> None:
        with self.daemon_lock:
            proc = self.daemon
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGUSR1)
            self.record.note("threads dumped (SIGUSR1)", why=why, generation=self.generation)

    # -- the actors

    def next_name(self, prefix: str) -> str:
        with self.counter_lock:
            self.counter += 1
            return f"{prefix}{self.counter}"

    def api_actor(self) -> None:
        import httpx

        token = (self.memory / "api-token").read_text().strip()
        client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=STALL_S + 30,
                              headers={"Authorization": f"Bearer {token}"})
        mine: list[str] = []
        rng = random.Random(1)
        ops = ["list", "get", "add", "add_photo", "rename", "forget", "recognize", "ask", "ask_photo", "ask_stream",
               "events", "snapshot", "thumb", "stats", "coins", "page", "taken"]
        while not self.stop.is_set():
            op = rng.choice(ops)
            t = time.monotonic()
            expected = {200, 201, 204}
            try:
                r, expected = self._api(client, op, mine, rng, expected)
                status, detail = r.status_code, r.text if r.status_code >= 300 else ""
            except httpx.TimeoutException as e:
                status, detail = "timeout", repr(e)
                self.dump_threads(f"api {op} over {STALL_S} s")
            except httpx.HTTPError as e:
                status, detail = "connection", repr(e)
                expected = expected | {"connection"} if self.restarting.is_set() else expected
            except _Skip:
                continue
            took = time.monotonic() - t
            if status == 503 and self.restarting.is_set():
                expected = expected | {503}
            self.record.call("api", op, status, took, status in expected, detail)
            if took > STALL_S:
                self.dump_threads(f"api {op} took {took:.0f} s")
            self.stop.wait(max(0.0, 1.0 - took))

    def _api(self, client, op: str, mine: list[str], rng: random.Random, ok: set):
        def photo(name: str, new: bool = False):
            p = self.variant(name, rng) if new else self.photos[name]
            return ("photo", (p.name, p.read_bytes(), "image/png" if p.suffix == ".png" else "image/jpeg"))

        concepts = None

        def any_concept() -> str:
            nonlocal concepts
            concepts = concepts or [c["name"] for c in client.get("/api/concepts").json()]
            if not concepts:
                raise _Skip
            return rng.choice(concepts)

        if op == "list":
            return client.get("/api/concepts"), ok
        if op == "get":
            return client.get(f"/api/concepts/{any_concept()}"), ok | {404}
        if op == "add":  # a spare photo under a new name; 409 when the photo is another concept's already
            name = self.next_name("api")
            r = client.post("/api/concepts", data={"name": name, "description": "added by the soak's API actor"},
                            files=[photo(rng.choice(self.spares), new=True)])
            if r.status_code == 201:
                mine.append(name)
                self.record.note("api added", name=name)
            return r, ok | {409}
        if op == "taken":  # a name the scene's first concept holds, in other case: refused, nothing changed
            return client.post("/api/concepts", data={"name": self.scene[0].upper()},
                               files=[photo(rng.choice(self.spares), new=True)]), {409}
        if op == "add_photo":
            if not mine:
                raise _Skip
            return client.post(f"/api/concepts/{rng.choice(mine)}/photos",
                               files=[photo(rng.choice(self.spares), new=True)]), ok | {404, 422}
        if op == "rename":
            if not mine:
                raise _Skip
            old = rng.choice(mine)
            new = self.next_name("apiR")
            r = client.patch(f"/api/concepts/{old}", json={"name": new})
            if r.status_code == 200:
                mine[mine.index(old)] = new
                self.record.note("api renamed", old=old, new=new)
            return r, ok | {404, 409}
        if op == "forget":
            if not mine:
                raise _Skip
            name = mine.pop(rng.randrange(len(mine)))
            r = client.delete(f"/api/concepts/{name}")
            self.record.note("api forgot", name=name)
            return r, ok | {404}
        if op == "recognize":
            return client.post("/api/recognize", files=[photo(rng.choice(list(self.photos)))]), ok
        if op == "ask":
            return client.post("/api/ask", data={"question": rng.choice(
                ["Where is chelsea?", "Is anyone home?", "What do you see?", f"Where is {any_concept()}?"])}), ok
        if op == "ask_photo":
            return client.post("/api/ask", data={"question": "What is this?"},
                               files=[photo(rng.choice(list(self.photos)))]), ok
        if op == "ask_stream":
            return client.post("/api/ask", data={"question": "What do you see?"},
                               headers={"Accept": "text/event-stream"}), ok
        if op == "page":
            return client.get("/"), ok
        if op == "events":
            return client.get("/api/events", params={"since": "10m"}), ok
        if op == "snapshot":
            events = [e for e in client.get("/api/events", params={"since": "10m"}).json() if e["snapshot"]]
            if not events:
                raise _Skip
            return client.get(rng.choice(events[-20:])["snapshot"]), ok | {404}
        if op == "thumb":
            name = any_concept()
            got = client.get(f"/api/concepts/{name}")
            if got.status_code != 200 or not got.json()["photos"]:
                return got, ok | {404}
            return client.get(rng.choice(got.json()["photos"])["url"], params={"size": rng.choice([64, 200, 480])}), \
                ok | {404}
        if op == "stats":
            return client.get("/api/stats"), ok
        if op == "coins":  # the object in the scene nobody taught: taught now, forgotten by the CLI later
            name = self.next_name("coins")
            r = client.post("/api/concepts", data={"name": name}, files=[photo(self.unknown, new=True)])
            if r.status_code == 201:
                self.record.note("coins added", name=name)
            return r, ok | {422}  # 422: the scene's object is taught already (one photo, two concepts)
        raise AssertionError(op)

    def cli_actor(self) -> None:
        rng = random.Random(2)
        mine: list[str] = []
        while not self.stop.wait(10):
            op = rng.choice(["remember", "add-views", "rename", "forget", "events", "ask", "concepts",
                             "forget-coins", "probe"])
            if op == "probe":
                self.probe_round()
                continue
            argv, ok = self._cli_argv(op, mine, rng)
            if argv is None:
                continue
            t = time.monotonic()
            try:
                p = self.cli(*argv, timeout=STALL_S + 60)
                status, detail = p.returncode, p.stderr.strip()
            except subprocess.TimeoutExpired:
                status, detail = "timeout", ""
                self.dump_threads(f"cli {op} over {STALL_S + 60} s")
            took = time.monotonic() - t
            if status == 0:
                self._cli_done(op, argv, mine)
            self.record.call("cli", op, status, took, status in ok, detail)
            if took > STALL_S:
                self.dump_threads(f"cli {op} took {took:.0f} s")

    def probe_round(self) -> None:
        """A concept the CLI remembers is recognised by the daemon's API at once, and no longer once forgotten."""
        import httpx

        token = (self.memory / "api-token").read_text().strip()
        name = self.next_name("probe")

        def seen() -> list[str] | None:
            try:
                r = httpx.post(f"http://127.0.0.1:{self.port}/api/recognize", files=[(
                    "photo", ("probe.png", self.photos[self.probe].read_bytes(), "image/png"))],
                    headers={"Authorization": f"Bearer {token}"}, timeout=STALL_S + 30)
            except httpx.HTTPError:
                return None  # the daemon restarting
            return [c["name"] for c in r.json()["concepts"]] if r.status_code == 200 else None

        for argv, present in ((["remember", name, str(self.photos[self.probe])], True), (["forget", name], False)):
            t = time.monotonic()
            p = self.cli(*argv, timeout=STALL_S + 60)
            self.record.call("cli", f"probe {argv[0]}", p.returncode, time.monotonic() - t, p.returncode == 0,
                             p.stderr.strip())
            if p.returncode != 0:
                return
            self.record.note(f"cli {'added' if present else 'forgot'}", name=name)
            names = seen()
            if names is not None and (name in names) != present:
                self.record.findings.append(f"the API {'did not recognise' if present else 'still recognised'} "
                                            f"<{name}> right after the CLI {argv[0]} ({names})")
            self.record.calls[f"probe {argv[0]} checked"] += names is not None

    def _cli_argv(self, op: str, mine: list[str], rng: random.Random):
        if op == "remember":
            name = self.next_name("cli")
            command = ["remember", name, str(self.variant(rng.choice(self.spares), rng)), "--description", "by the CLI"]
            return command, {0}
        if op in ("add-views", "rename", "forget") and not mine:
            return None, None
        if op == "add-views":
            return ["add-views", rng.choice(mine), str(self.variant(rng.choice(self.spares), rng))], {0}
        if op == "rename":
            return ["rename", rng.choice(mine), self.next_name("cliR")], {0}
        if op == "forget":
            return ["forget", rng.choice(mine)], {0}
        if op == "events":
            return ["events", "--since", "10m", "--json"], {0}
        if op == "ask":
            return ["ask", "Where is chelsea?"], {0}
        if op == "concepts":
            return ["concepts", "--json"], {0}
        if op == "forget-coins":
            coins = [n for n in self._names() if n.startswith("coins")]
            return (["forget", coins[0]], {0}) if coins else (None, None)
        raise AssertionError(op)

    def _cli_done(self, op: str, argv: list[str], mine: list[str]) -> None:
        if op == "remember":
            mine.append(argv[1])
            self.record.note("cli added", name=argv[1])
        elif op == "rename":
            mine[mine.index(argv[1])] = argv[2]
            self.record.note("cli renamed", old=argv[1], new=argv[2])
        elif op in ("forget", "forget-coins"):
            if argv[1] in mine:
                mine.remove(argv[1])
            self.record.note("cli forgot", name=argv[1])

    def variant(self, name: str, rng: random.Random) -> Path:
        """A new photo of `name`: a random crop of its photo (a new file, so no concept holds it yet)."""
        from PIL import Image

        rgb = Image.open(self.photos[name]).convert("RGB")
        w, h = rgb.size
        x0, y0 = rng.randrange(w // 8), rng.randrange(h // 8)
        path = self.work / "photos" / f"{self.next_name(name + '-')}.jpg"
        rgb.crop((x0, y0, x0 + w * 7 // 8, y0 + h * 7 // 8)).save(path, quality=90)
        return path

    def _names(self) -> list[str]:
        p = self.cli("concepts", "--json")
        return [c["name"] for c in json.loads(p.stdout)] if p.returncode == 0 else []

    def sampler(self) -> None:
        while not self.stop.is_set():
            with self.daemon_lock:
                proc = self.daemon
            if proc is not None and proc.poll() is None and not self.restarting.is_set():  # (up, serving)
                sample = {"wall": time.time(), "generation": self.generation,
                          "elapsed_s": round(time.time() - self.started), **_process(proc.pid), **self._files()}
                self.record.samples.append(sample)
                with open(self.work / "samples.jsonl", "a") as f:  # to watch while it runs
                    f.write(json.dumps(sample) + "\n")
            self.stop.wait(SAMPLE_S)

    def _files(self) -> dict:
        sizes = {p.name: p.stat().st_size for p in self.memory.glob("*.sqlite*")}
        in_memory = [str(p.relative_to(self.memory)) for p in self.memory.rglob("*")
                     if p.is_file() and re.search(r"tmp|\.part$|\.new$|^\.", p.name)]
        return {"sqlite": sizes, "tmp_files": len(list(self.tmp.rglob("*"))),
                "tmp_in_memory": in_memory[:10],
                "snapshots": len(list(self.snapshots.glob("*.jpg"))) if self.snapshots.exists() else 0,
                "speech_wavs": len(list(self.speech.glob("*.wav"))) if self.speech.exists() else 0}

    def conductor(self) -> None:
        """The camera's absences and the daemon's restarts, at fixed points of the run."""
        plan = [] if self.steady else \
            [(0.25, "term"), (0.35, "camera 40"), (0.50, "term"), (0.60, "camera 15"), (0.75, "kill")]
        for at, what in plan:
            if self.stop.wait(max(0.0, self.started + at * self.seconds - time.time())):
                return
            self.record.note(what)
            if what.startswith("camera"):
                self.camera.down(float(what.split()[1]))
                self.record.note("camera back")
                continue
            self.restarting.set()
            self.end_daemon(signal.SIGTERM if what == "term" else signal.SIGKILL)
            self.start_daemon()
            self.restarting.clear()

    def run(self) -> dict:
        self.setup()
        self.start_daemon()
        actors = [threading.Thread(target=f, daemon=True) for f in
                  (self.sampler, self.api_actor, self.cli_actor, self.conductor)]
        for a in actors:
            a.start()
        self.stop.wait(self.seconds)
        self.stop.set()
        for a in actors:
            a.join(STALL_S + 120)
        self.record.findings += self._pinned_wal()
        self.end_daemon(signal.SIGTERM)
        return self.report()

    # -- the report

    def report(self) -> dict:
        r = self.record
        err = "".join((self.work / f"daemon-{g}.err").read_text() for g in range(1, self.generation + 1))
        tracebacks = err.count("Traceback (most recent call last)")
        problems = [line for line in err.splitlines() if re.search(r"ERROR|WARNING|Traceback|Error:", line)]
        concepts = set(self._names())
        events = self._events()
        spoken = self._daemon_lines()
        forgotten_events = sorted({e["name"] for e in events if e["name"] not in concepts})
        r.findings += self._announced_while_forgotten(spoken)
        if forgotten_events:
            r.findings.append(f"events of concepts no longer remembered: {forgotten_events[:10]}")
        for db in ("memory.sqlite", "events.sqlite"):
            with sqlite3.connect(self.memory / db) as c:
                check = c.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                r.findings.append(f"{db}: integrity_check says {check}")
        r.findings += self._photo_files()
        written = sorted(str(p.relative_to(self.home)) for p in self.home.rglob("*") if p.is_file())
        if written:
            r.findings.append(f"files written under $HOME: {written[:10]}")
        curves = {f"{k} {g}": _curve([s[k] for s in r.samples if k in s and s["generation"] == g])
                  for k in ("rss_mb", "fds", "threads", "children") for g in range(1, self.generation + 1)}
        return {"minutes": self.seconds / 60, "generations": self.generation, "curves": curves,
                "calls": dict(sorted(r.calls.items())), "unexpected": r.unexpected, "stalls": r.stalls,
                "slowest": r.slowest, "latency_s": {k: _spread(v) for k, v in sorted(r.seconds.items())},
                "daemon_tracebacks": tracebacks, "daemon_problem_lines": problems[:60],
                "voice_turns": sum(1 for s in spoken if s.get("type") == "answer"),
                "voice_speech_end_to_answer_s": _spread([s["timings"]["speech_end_to_answer_start_ms"] / 1000
                                                         for s in spoken if s.get("type") == "answer"
                                                         and "speech_end_to_answer_start_ms" in s["timings"]]),
                "voice_commands": collections.Counter(f"{s['command']['action']} {s['command']['state']}"
                                                      for s in spoken if s.get("type") == "answer" and s["command"]),
                "arrivals": sum(1 for s in spoken if s.get("type") == "arrived"),
                "findings": r.findings, "timeline": r.timeline, "samples": r.samples,
                "last_files": r.samples[-1] if r.samples else {}}

    def _events(self) -> list[dict]:
        p = self.cli("events", "--json", "--limit", "100000")
        return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]

    def _daemon_lines(self) -> list[dict]:
        lines = []
        for g in range(1, self.generation + 1):
            for line in (self.work / f"daemon-{g}.out").read_text().splitlines():
                if line.startswith("{"):
                    try:
                        lines.append(json.loads(line))
                    except json.JSONDecodeError:
                        self.record.findings.append(f"daemon {g} printed half a JSON line: {line[:80]}")
        return lines

    def _announced_while_forgotten(self, spoken: list[dict]) -> list[str]:
        """An arrival announced more than 5 s after its concept was forgotten (or renamed away)."""
        gone: dict[str, float] = {}
        for t in self.record.timeline:
            if t["what"] in ("cli forgot", "api forgot"):
                gone[t["name"]] = t["wall"]
            elif t["what"] in ("cli renamed", "api renamed"):
                gone[t["old"]] = t["wall"]
        late = [f"<{s['name']}> announced {s['wall'] - gone[s['name']]:.0f} s after it was forgotten or renamed"
                for s in spoken if s.get("type") == "arrived" and s.get("name") in gone
                and s["wall"] > gone[s["name"]] + 5]
        return late[:10]

    def _pinned_wal(self) -> list[str]:
        """While the daemon still runs: a write-ahead log that cannot be checkpointed to its end has a reader
        holding an old snapshot, and grows for as long as it does."""
        out = []
        for db in ("memory.sqlite", "events.sqlite"):
            with sqlite3.connect(self.memory / db, timeout=30) as c:
                busy, log, done = c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.record.note("checkpoint", db=db, busy=busy, log=log, checkpointed=done)
            if done < log:
                out.append(f"{db}: {log - done} of {log} WAL frames could not be checkpointed (a reader holds them)")
        return out

    def _photo_files(self) -> list[str]:
        with sqlite3.connect(self.memory / "memory.sqlite") as c:
            paths = {Path(row[0]).name for row in c.execute("SELECT image_file FROM views")}
        files = {p.name for p in (self.memory / "images").rglob("*") if p.is_file()}
        out = []
        if files - paths:
            out.append(f"{len(files - paths)} photo file(s) no concept holds: {sorted(files - paths)[:5]}")
        if paths - files:
            out.append(f"{len(paths - files)} photo(s) the memory names are missing: {sorted(paths - files)[:5]}")
        return out


class _Skip(Exception):
    """Nothing for this operation to act on yet."""


def _stamped(stream, path: Path) -> None:
    """Each line of `stream` into `path` with the time it came."""
    with open(path, "w") as f:
        for line in stream:
            f.write(f"{time.strftime('%H:%M:%S')} {line}")
            f.flush()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process(pid: int) -> dict:
    """RSS (MB), open fds, threads and child processes of `pid`."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, AttributeError):
        return {}
    children = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children += stat.read_text().rsplit(")", 1)[1].split()[1] == str(pid)
        except (OSError, IndexError):
            pass
    return {"pid": pid, "rss_mb": round(rss, 1), "fds": fds, "threads": threads, "children": children}


def _spread(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    if not ordered:
        return {}
    return {"median": round(ordered[len(ordered) // 2], 2), "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
            "max": round(ordered[-1], 2)}


def _curve(values: list[float]) -> dict:
    if not values:
        return {}
    return {"start": values[0], "end": values[-1], "peak": max(values), "min": min(values)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["daemon"]:
        return daemon_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--minutes", type=float, default=18.0)
    parser.add_argument("--work", type=Path, help="a new folder for the memory, logs and report (default: a "
                                                  "temporary one, kept)")
    parser.add_argument("--photos", type=Path, help="a folder of photos to use instead of the demo's samples")
    parser.add_argument("--steady", action="store_true", help="one daemon all along, its camera always there: "
                                                              "whether its resources level off")
    parser.add_argument("--json", action="store_true", help="print the whole report, samples too")
    args = parser.parse_args(argv)
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="edge-rap-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    report = Soak(work, args.minutes, args.photos, args.steady).run()
    (work / "report.json").write_text(json.dumps(report, indent=1, default=str))
    if args.json:
        print(json.dumps(report, default=str))
        return 0
    for key in ("minutes", "generations", "curves", "calls", "latency_s", "voice_turns", "voice_speech_end_to_answer_s",
                "voice_commands", "arrivals", "daemon_tracebacks",
                "findings", "unexpected", "stalls", "slowest", "daemon_problem_lines", "last_files"):
        value = report[key]
        print(f"{key}: {json.dumps(value, indent=1, default=str) if isinstance(value, (dict, list)) else value}")
    print(f"report: {work / 'report.json'}")
    return 1 if report["findings"] or report["unexpected"] or report["stalls"] else 0


if __name__ == "__main__":
    sys.exit(main())
