"""Kill every command that writes the memory (SIGKILL, a power cut as a process sees it) at seeded random moments,
then check that nothing stored before is lost or damaged and that the next command needs no repair.

Each trial runs one writer against one memory that lives through all the trials: remember (a person: with a face),
add-views, edit, rename, forget, reindex, import-rap, backup, restore --replace, `run` (its event log, and its
scheduled backups), `serve` (an upload, a delete), killed after a random delay within its own duration (measured
once, unkilled). After each kill, with the library and the CLI:
  - SQLite's integrity check passes; every concept listed has its views, and each view's photo is there with the
    bytes it was stored with; each space's listed index files hold exactly the database's vectors;
  - every concept stored before the kill is still there with every view it had (the killed command's own target
    may be either way: forgotten or not, renamed or not; a restore's memory is the one before or the backup's);
  - `concepts` and `recognize` (of a stored photo: the top hit is its concept) succeed, and `events` reads the log.
At the end one more remember, restore and backup must leave no temporary or unreferenced file behind. Exit status 1 on
any failure.

  python tools/crash_check.py [--trials 60] [--seed 1] [--work DIR] [--only remember,forget,...]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edge_rap.memory.files import stored_files
from edge_rap.memory.index import index_files
from edge_rap.memory.store import Store
from edge_rap.scratch import GRACE_S

PEOPLE = ("grace_hopper", "astronaut")
#: the sample photos that are things (textures and the like leave too little to tell apart)
THINGS = ("chelsea", "coffee", "rocket", "coins", "camera", "brick", "moon", "logo", "page", "cell", "retina",
          "colorwheel", "hubble_deep_field")
EDGE_RAP = [sys.executable, "-m", "edge_rap"]


@dataclass
class Trial:
    """One killed command: what it was, and the outcome the check allows for its target."""

    scenario: str
    argv: list[str]
    target: str | None = None  # the concept the command changes: either way is fine
    renamed_to: str | None = None
    restores: dict | None = None  # restore: the memory may be the backup's (name -> views) instead


def snapshot(memory: Path) -> dict[str, set[tuple[str, str | None]]]:
    """Each concept's name -> its views (photo sha256, box)."""
    if not (memory / "memory.sqlite").exists():
        return {}
    store = Store(memory, readonly=True)
    try:
        return {c.name: {(v.image_sha256, str(v.box)) for v in store.views(c.id)} for c in store.concepts()}
    finally:
        store.close()


def invariants(memory: Path) -> list[str]:
    """What a reader relies on, checked with the library: the database whole, photos intact, index == vectors."""
    from usearch.index import Index

    problems = []
    store = Store(memory, readonly=True)
    try:
        if store.db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            return ["integrity_check failed"]
        for concept in store.concepts():
            views = store.views(concept.id)
            if not views or len(views) != concept.views:
                problems.append(f"<{concept.name}>: {len(views)} views, {concept.views} counted")
            for view in views + store.views(concept.id, kind="face"):
                if not store.photo_intact(view):
                    problems.append(f"<{concept.name}>: photo missing or damaged: {view.image_path}")
        for space in store.space_names():
            row = store.space(space)
            keys, _ = store.vectors(space)
            indexed: Counter[int] = Counter()
            for name in index_files(row[4]):
                path = memory / "index" / name
                if not path.is_file():
                    problems.append(f"{space}: listed index file missing: {name}")
                    continue
                indexed.update(int(k) for k in Index.restore(str(path)).keys)
            if indexed != Counter(int(k) for k in keys):
                problems.append(f"{space}: index and database disagree ({sum(indexed.values())} indexed, "
                                f"{len(keys)} vectors)")
    finally:
        store.close()
    return problems


def lost(before: dict, after: dict, trial: Trial) -> list[str]:
    """What was stored before the kill and is gone, beyond what the killed command itself may have changed."""
    if trial.restores is not None and after.keys() == trial.restores.keys():
        before = trial.restores
    problems = []
    for name, views in before.items():
        if name == trial.target and (name not in after and (trial.renamed_to in after or trial.renamed_to is None)):
            continue
        if name not in after:
            problems.append(f"<{name}> was stored before and is gone")
        elif not views <= after[name]:
            problems.append(f"<{name}> lost {len(views - after[name])} of its views")
    return problems


class Harness:
    def __init__(self, work: Path, seed: int):
        self.work, self.rng = work, random.Random(seed)
        self.memory, self.photos = work / "memory", work / "photos"
        self.env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.durations: dict[str, float] = {}
        self.counter = 0

    def cli(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*EDGE_RAP, *argv, "--memory", str(self.memory)], capture_output=True, text=True,
                              env=self.env, timeout=timeout)

    def setup(self) -> None:
        from PIL import Image

        from edge_rap.export.calibrate import sample_photo_bank

        self.photos.mkdir(parents=True)
        for name, pixels in sample_photo_bank().items():
            Image.fromarray(pixels).save(self.photos / f"{name}.png")
            h, w = pixels.shape[:2]  # a second photo of it: its middle
            Image.fromarray(pixels[h // 8: h - h // 8, w // 8: w - w // 8]).save(self.photos / f"{name}-2.png")
        for name in THINGS[:5] + PEOPLE[:1]:
            self.remember_now(name)
        self.video = self._video()
        rap = self.work / "rap"  # a RAP database of two things, imported again and again (under new names)
        rap.mkdir()
        self.rap_things = THINGS[5:7]
        for name in self.rap_things:
            shutil.copy(self.photos / f"{name}.png", rap / f"{name}.png")
        self.backup = self.work / "setup-backup.tar"
        self.must(self.cli("backup", str(self.backup)))
        (self.memory / "demo").mkdir()  # the device's own, never backed up: a restore must keep it in place
        (self.memory / "demo" / "scene.png").write_bytes(b"the demo's photo")

    def _video(self) -> Path:
        """What `run` watches: the remembered things in turn, 2 s each, at 5 frames a second (arrivals, leavings)."""
        import cv2

        path, size = self.work / "household.avi", (320, 240)
        out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, size)
        for k in range(20):
            name = (THINGS[:5] + PEOPLE[:1])[k % 6]
            frame = cv2.resize(cv2.imread(str(self.photos / f"{name}.png")), size)
            for _ in range(10):
                out.write(frame)
        out.release()
        return path

    def remember_now(self, name: str) -> None:
        person = ["--category", "person"] if name in PEOPLE else []
        self.must(self.cli("remember", name, str(self.photos / f"{name}.png"), *person))

    @staticmethod
    def must(done: subprocess.CompletedProcess) -> None:
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(done.args)}: {done.stderr.strip()}")

    # --- the killed commands

    def trial(self, scenario: str, now: dict) -> Trial:
        """The next command of `scenario` on the memory as it is (`now`)."""
        rng, self.counter = self.rng, self.counter + 1
        missing = [n for n in THINGS + PEOPLE if n not in now]
        known = sorted(now)
        mem = ["--memory", str(self.memory)]
        if scenario == "remember" and missing:
            name = rng.choice(missing)
            person = ["--category", "person"] if name in PEOPLE else []
            return Trial(scenario, ["remember", name, str(self.photos / f"{name}.png"), *person, *mem], name)
        if scenario == "add-views" and known:
            name = rng.choice(known)
            base = name.split("~")[0]
            return Trial(scenario, ["add-views", name, str(self.photos / f"{base}-2.png"), *mem], name)
        if scenario == "edit" and known:
            name = rng.choice(known)
            return Trial(scenario, ["edit", name, "--description", f"edited {self.counter}", *mem], name)
        if scenario == "rename" and known:
            name = rng.choice(known)
            new = f"{name.split('~')[0]}~{self.counter}"
            return Trial(scenario, ["rename", name, new, *mem], name, renamed_to=new)
        if scenario == "forget" and len(known) > 3:
            name = rng.choice(known)
            return Trial(scenario, ["forget", name, *mem], name)
        if scenario == "reindex":
            return Trial(scenario, ["reindex", *mem])
        if scenario == "import-rap":
            return self._import_rap(now, mem)
        if scenario == "backup":
            return Trial(scenario, ["backup", str(self.work / "backup.tar"), "--force", *mem])
        if scenario == "restore":
            with tempfile.TemporaryDirectory() as tmp:  # what the backup holds
                shutil.unpack_archive(self.backup, tmp)
                backed = snapshot(Path(tmp))
            return Trial(scenario, ["restore", str(self.backup), "--replace", *mem], restores=backed)
        if scenario == "run":
            return Trial(scenario, ["run", "--source", str(self.video), "--mute", *mem])
        if scenario == "scheduled-backup":
            script = ("import sys, time; from pathlib import Path; "
                      "from edge_rap.daemon.backups import BackupSchedule, ScheduledBackups; "
                      "b = ScheduledBackups(Path(sys.argv[1]), BackupSchedule(Path(sys.argv[2]), every_s=60), "
                      "first_s=0, poll_s=0.05); b.start(); time.sleep(60)")
            return Trial(scenario, ["-c", script, str(self.memory), str(self.work / "stick")])
        return self.trial("remember" if missing else "forget", now)

    def _import_rap(self, now: dict, mem: list[str]) -> Trial:
        rap = self.work / "rap"
        names = {n: f"imported{self.counter}-{n}" for n in self.rap_things}
        for name in self.rap_things:  # one photo is one concept's: the earlier imports give theirs back
            for old in [k for k in now if k.endswith(f"-{name}") and k.startswith("imported")]:
                self.cli("forget", old)
        database = {"concept_dict": {f"<{new}>": {"name": new, "image": [str(rap / f"{old}.png")], "info": old,
                                                  "category": "thing"} for old, new in names.items()},
                    "path_to_concept": {str(rap / f"{old}.png"): f"<{new}>" for old, new in names.items()}}
        (rap / "database.json").write_text(json.dumps(database))
        return Trial("import-rap", ["import-rap", str(rap / "database.json"), *mem])

    def kill_one(self, trial: Trial) -> tuple[float, str]:
        """Start the trial's command, SIGKILL it after a random delay; (the delay, how far it got)."""
        argv = [sys.executable, *trial.argv] if trial.argv[0] == "-c" else [*EDGE_RAP, *trial.argv]
        started = time.monotonic()
        if trial.scenario not in self.durations:  # its own duration, once, unkilled (the run: its startup)
            done = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=120) \
                if trial.scenario not in ("run", "scheduled-backup") else None
            self.durations[trial.scenario] = time.monotonic() - started if done else 6.0
            return 0.0, "not killed: " + ("exit 0" if done is None or done.returncode == 0 else done.stderr.strip())
        # not in its first 30 %: the imports and the model's loading write nothing
        delay = self.rng.uniform(0.3, 1.0) * self.durations[trial.scenario]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env)
        time.sleep(delay)
        finished = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return delay, "finished" if finished else "killed"

    def serve_trial(self, now: dict) -> tuple[Trial, float]:
        """An upload or a delete through the API, `serve` killed a random moment after the request was sent."""
        self.counter += 1
        port = _free_port()
        proc = subprocess.Popen([*EDGE_RAP, "serve", "--port", str(port), "--memory", str(self.memory)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env)
        try:
            _wait_for(f"http://127.0.0.1:{port}/api/health")
            token = (self.memory / "api-token").read_text().strip()
            missing = [n for n in THINGS if n not in now]
            if missing and (len(now) < 6 or self.counter % 2):
                name = self.rng.choice(missing)
                request = _upload(port, token, name, self.photos / f"{name}.png")
            else:
                name = self.rng.choice(sorted(now))
                request = urllib.request.Request(f"http://127.0.0.1:{port}/api/concepts/{name}", method="DELETE",
                                                 headers={"Authorization": f"Bearer {token}"})
            trial = Trial(f"serve-{request.get_method().lower()}", ["serve", request.get_method(), name], name)
            sender = subprocess.Popen([sys.executable, "-c", _SEND, request.full_url, request.get_method(),
                                       json.dumps(dict(request.header_items())), _body_file(request, self.work)])
            delay = self.rng.uniform(0.0, 1.5)
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        sender.wait()
        return trial, delay

    # --- after each kill

    def check(self, before: dict, trial: Trial) -> list[str]:
        problems = []
        concepts = self.cli("concepts", "--json")
        if concepts.returncode != 0:
            return [f"concepts after the kill: {concepts.stderr.strip()}"]
        after = snapshot(self.memory)
        problems += invariants(self.memory) + lost(before, after, trial)
        if not (self.memory / "demo" / "scene.png").is_file():
            problems.append("the device's own demo folder is not in the memory after the next command")
        if after:
            name = self.rng.choice(sorted(after))
            store = Store(self.memory, readonly=True)
            try:
                photo = store.views(store.get(name).id)[0].image_path
            finally:
                store.close()
            seen = self.cli("recognize", photo, "--json")
            hits = json.loads(seen.stdout.splitlines()[0])["concepts"] if seen.returncode == 0 else []
            if seen.returncode != 0 or not hits or hits[0]["name"] != name:
                problems.append(f"recognize <{name}>'s photo: {seen.stderr.strip() or hits[:2]}")
        events = self.cli("events", "--json")
        if events.returncode != 0:
            problems.append(f"events: {events.stderr.strip()}")
        return problems

    def leftovers(self) -> list[str]:
        """After one more write, then restore and backup: no file a killed command left (temporary, unreferenced)
        may remain. (A killed backup's partial file or restore's folder is removed by the next one once a minute
        old, scratch.GRACE_S: its maker may be between making and holding it.)"""
        missing = [n for n in THINGS if n not in snapshot(self.memory)]
        self.remember_now(missing[0])
        self.must(self.cli("forget", missing[0]))  # (which deletes what the remember superseded)
        store = Store(self.memory, readonly=True)
        try:
            photos = {Path(v.image_path).name for c in store.concepts() for v in store.views(c.id)}
            listed = {n for s in store.space_names() for n in index_files(store.space(s)[4])}
        finally:
            store.close()
        stray = [str(p) for p in stored_files(self.memory) if p.name not in photos | listed]
        killed = lambda: [p for p in self.memory.parent.iterdir() if ".restoring-" in p.name  # noqa: E731
                          or ".partial-" in p.name]
        time.sleep(max(0.0, max((p.lstat().st_mtime for p in killed()), default=0.0) + GRACE_S + 1 - time.time()))
        self.must(self.cli("restore", str(self.backup), "--replace"))
        self.must(self.cli("backup", str(self.work / "backup.tar"), "--force"))
        return stray + [str(p) for p in killed()]


class Concurrent:
    """Two processes writing the memory at once: each either succeeds or is refused in one line, neither's work is
    lost, and a long-running reader (`run`, `serve`) sees the other's change without a restart."""

    def __init__(self, harness: Harness):
        self.h = harness

    def start(self, *argv: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([*EDGE_RAP, *argv, "--memory", str(self.h.memory)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.h.env, **kw)

    def both(self, first: list[str], second: list[str], delay: float = 0.0) -> list[tuple[int, str]]:
        """Two commands at once (the second `delay` s after the first): (exit status, stderr) of each."""
        a = self.start(*first)
        time.sleep(delay)
        b = self.start(*second)
        return [(p.wait(120), p.stderr.read().strip()) for p in (a, b)]

    def two_remembers(self) -> list[str]:
        """Two names at once, then one name twice (one refused: already exists)."""
        problems = []
        free = [n for n in THINGS if n not in snapshot(self.h.memory)][:3]
        photo = lambda n: str(self.h.photos / f"{n}.png")  # noqa: E731
        done = self.both(["remember", free[0], photo(free[0])], ["remember", free[1], photo(free[1])])
        problems += [f"remember beside remember: {err}" for rc, err in done if rc != 0]
        done = self.both(["remember", "twice", photo(free[2])], ["remember", "twice", photo(free[2])])
        if sorted(rc for rc, _ in done) != [0, 2] or not any("already exists" in err for _, err in done):
            problems.append(f"one name remembered twice at once: {done}")
        problems += [f"<{n}> missing after remembering it at once" for n in (*free[:2], "twice")
                     if n not in snapshot(self.h.memory)]
        for name in (*free[:2], "twice"):
            self.h.cli("forget", name)
        return problems

    def rename_beside_forget(self) -> list[str]:
        """`rename X Y` and `forget X` at once: one of them is refused, or the forget comes first."""
        name = next(n for n in THINGS if n not in snapshot(self.h.memory))
        self.h.remember_now(name)
        (rename_rc, rename_err), (forget_rc, forget_err) = self.both(["rename", name, f"{name}~r"], ["forget", name])
        after = snapshot(self.h.memory)
        if rename_rc == 0 and forget_rc == 0:
            return [f"rename and forget of <{name}> both said done; left: {f'{name}~r' in after}"]
        self.h.cli("forget", f"{name}~r")
        return [f"refused in more than one line: {err}" for err in (rename_err, forget_err) if err.count("\n")]

    def forget_while_run_recognises(self) -> list[str]:
        """`run` watches the video; coffee is forgotten mid-run, then remembered as another name: after the forget
        returns, no arrival of <coffee>; the new name arrives within the video's next round."""
        if "coffee" not in snapshot(self.h.memory):
            self.h.remember_now("coffee")
        run = self.start("run", "--source", str(self.h.video), "--mute", "--json", "--duration", "45")
        events: list[dict] = []
        reader = threading.Thread(target=lambda: events.extend(json.loads(line) for line in run.stdout
                                                                if line.startswith("{")))
        reader.start()
        problems = []
        try:
            _until(lambda: any(e.get("name") == "coffee" and e.get("type") == "arrived" for e in events), 30)
            forgot = self.h.cli("forget", "coffee")
            forgotten_at = time.time()
            remembered = self.h.cli("remember", "kaffee", str(self.h.photos / "coffee.png"))
            problems += [f"{done.args[3]} beside run: {done.stderr.strip()}" for done in (forgot, remembered)
                         if done.returncode]
            _until(lambda: any(e.get("name") == "kaffee" for e in events), 30)
        finally:
            run.send_signal(signal.SIGINT)
            run.wait(60)
            reader.join()
        late = [e for e in events
                if e.get("name") == "coffee" and e.get("type") == "arrived" and e["wall"] > forgotten_at]
        problems += [f"<coffee> announced after it was forgotten: {late[0]}"] if late else []
        if not any(e.get("name") == "kaffee" and e.get("type") == "arrived" for e in events):
            problems.append("run never saw <kaffee>, remembered while it ran")
        logged = json.loads(self.h.cli("events", "--name", "coffee", "--json").stdout or "[]")
        problems += [f"the log keeps {len(logged)} events of <coffee>, forgotten while run ran"] if logged else []
        self.h.cli("forget", "kaffee")
        self.h.remember_now("coffee")
        return problems

    def upload_while_reindex(self) -> list[str]:
        """An API upload (a person: a face too) while the CLI reindexes: both done, the upload recognised by both."""
        port = _free_port()
        serve = self.start("serve", "--port", str(port))
        problems = []
        try:
            _wait_for(f"http://127.0.0.1:{port}/api/health")
            token = (self.h.memory / "api-token").read_text().strip()
            for k, delay in enumerate((0.3, 0.8, 1.3)):
                name = f"astronaut{k}"
                reindex = self.start("reindex")
                time.sleep(delay)
                try:
                    urllib.request.urlopen(_upload(port, token, name, self.h.photos / "astronaut.png",
                                                   category="person"), timeout=120)
                except urllib.error.HTTPError as e:
                    problems.append(f"upload beside reindex: {e.code} {e.read().decode()[:200]}")
                if reindex.wait(120):
                    problems.append(f"reindex beside an upload: {reindex.stderr.read().strip()}")
                seen = self.h.cli("recognize", str(self.h.photos / "astronaut.png"), "--json")
                if f'"{name}"' not in seen.stdout:
                    problems.append(f"<{name}>, uploaded during a reindex, not recognised: {seen.stdout[:200]}")
                problems += invariants(self.h.memory)
                forgot = self.h.cli("forget", name)
                if forgot.returncode:
                    problems.append(f"forget <{name}> after the upload: {forgot.stderr.strip()}")
            problems += self._serve_sees_the_cli(port, token)
        finally:
            serve.send_signal(signal.SIGINT)
            serve.wait(60)
        return problems

    def _serve_sees_the_cli(self, port: int, token: str) -> list[str]:
        """A photo the CLI remembers is recognised by the running API at once, and not once forgotten."""
        name = next(n for n in THINGS if n not in snapshot(self.h.memory))
        photo = self.h.photos / f"{name}.png"
        seen = []
        for command in ("remember", "forget"):
            self.h.must(self.h.cli(command, name, *([str(photo)] if command == "remember" else [])))
            body = f"--x\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{photo.name}\"\r\n\r\n"
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/recognize", method="POST",
                data=body.encode() + photo.read_bytes() + b"\r\n--x--\r\n",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data; boundary=x"})
            found = json.load(urllib.request.urlopen(request, timeout=60))["concepts"]
            seen.append(bool(found) and found[0]["name"] == name)
        return [] if seen == [True, False] else [f"serve's recognition of <{name}> after remember, forget: {seen}"]

    def restore_while_serve(self) -> list[str]:
        """Refused in one line, nothing changed; serve goes on answering."""
        port = _free_port()
        serve = self.start("serve", "--port", str(port))
        try:
            _wait_for(f"http://127.0.0.1:{port}/api/health")
            before = snapshot(self.h.memory)
            done = self.h.cli("restore", str(self.h.backup), "--replace")
            token = (self.h.memory / "api-token").read_text().strip()
            listed = urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{port}/api/concepts", headers={"Authorization": f"Bearer {token}"}), timeout=30)
            names = {c["name"] for c in json.load(listed)}
        finally:
            serve.send_signal(signal.SIGINT)
            serve.wait(60)
        problems = []
        if done.returncode != 2 or "in use by" not in done.stderr or done.stderr.strip().count("\n"):
            problems.append(f"restore beside serve: exit {done.returncode}: {done.stderr.strip()}")
        if snapshot(self.h.memory) != before or names != set(before):
            problems.append("restore beside serve changed the memory")
        return problems


def _until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


_SEND = """
import json, sys, urllib.request
url, method, headers, body = sys.argv[1:5]
data = open(body, "rb").read() if body else None
try:
    request = urllib.request.Request(url, data=data, method=method, headers=json.loads(headers))
    urllib.request.urlopen(request, timeout=60)
except Exception:
    pass
"""


def _body_file(request: urllib.request.Request, work: Path) -> str:
    if request.data is None:
        return ""
    (work / "body").write_bytes(request.data)
    return str(work / "body")


def _upload(port: int, token: str, name: str, photo: Path, category: str = "") -> urllib.request.Request:
    boundary = "crashcheck"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"category\"\r\n\r\n{category}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{photo.name}\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return urllib.request.Request(f"http://127.0.0.1:{port}/api/concepts", data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url}: no answer in {timeout} s")


CONCURRENT = ("two_remembers", "rename_beside_forget", "forget_while_run_recognises", "upload_while_reindex",
              "restore_while_serve")
SCENARIOS = ("remember", "add-views", "edit", "rename", "forget", "reindex", "import-rap", "backup", "restore",
             "run", "scheduled-backup", "serve")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, help="a new folder (default: a temporary one, removed)")
    parser.add_argument("--only", help="comma-separated scenarios: " + ",".join(SCENARIOS + CONCURRENT))
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(SCENARIOS + CONCURRENT)
    scenarios = [s for s in chosen if s in SCENARIOS]
    work = args.work or Path(tempfile.mkdtemp(prefix="crash-check-"))
    harness = Harness(work, args.seed)
    harness.setup()
    failures, kills = 0, Counter()
    concurrent = Concurrent(harness)
    for name in (s for s in chosen if s in CONCURRENT):
        problems = getattr(concurrent, name)() + invariants(harness.memory)
        failures += bool(problems)
        print(f"    {name:28s}: {'; '.join(problems) if problems else 'ok'}", flush=True)
    for k in range(args.trials if scenarios else 0):
        scenario = scenarios[k % len(scenarios)]
        if scenario == "serve":
            before = snapshot(harness.memory)
            (trial, delay), how = harness.serve_trial(before), "killed"
        else:
            trial = harness.trial(scenario, snapshot(harness.memory))
            before = snapshot(harness.memory)  # (an import's set-up forgets the earlier imports)
            delay, how = harness.kill_one(trial)
        kills[trial.scenario, how.split(":")[0]] += 1
        problems = harness.check(before, trial)
        failures += bool(problems)
        print(f"{k:3d} {trial.scenario:16s} {how[:60]:20s} after {delay:4.2f} s: "
              f"{'; '.join(problems) if problems else 'ok'}", flush=True)
    stray = harness.leftovers()
    print(json.dumps({"trials": args.trials if scenarios else 0, "concurrent": len(chosen) - len(scenarios),
                      "failed": failures, "stray_files": stray,
                      "kills": {f"{s} {h}": n for (s, h), n in sorted(kills.items())}}))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures or stray else 0


if __name__ == "__main__":
    sys.exit(main())
