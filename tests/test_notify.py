"""systemd's notify protocol: `run` says READY=1 once it watches, a status line, WATCHDOG=1 while every part makes
progress, and STOPPING=1; nothing without $NOTIFY_SOCKET; a socket that refuses is never the daemon's end."""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from scenes import scene_file

from edge_rap.daemon.loop import Daemon, DaemonOptions
from edge_rap.daemon.notify import Notifier, Supervisor, notify_address
from edge_rap.liveness import Heartbeat, long_call
from edge_rap.perceive.camera import parse_source


class Manager:
    """systemd's side: a datagram socket at NOTIFY_SOCKET's address, whose messages a thread takes as they come (a
    sender blocks once 10 wait: net.unix.max_dgram_qlen), kept in order."""

    def __init__(self, kind: str):
        self.folder = Path(tempfile.mkdtemp(prefix="sd"))  # (an AF_UNIX path is at most 107 bytes)
        self.env = str(self.folder / "notify") if kind == "path" else f"@edge-rap-test-{uuid.uuid4().hex}"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(notify_address(self.env))
        self.messages: list[list[str]] = []
        self.got = threading.Condition()
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        while True:
            try:
                data = self.socket.recv(4096)
            except OSError:  # closed
                return
            with self.got:
                self.messages.append(data.decode().split("\n"))
                self.got.notify_all()

    def wait_for(self, found, timeout: float = 60.0) -> list[list[str]]:
        """The messages once `found(messages)` holds (a failure after `timeout`)."""
        with self.got:
            assert self.got.wait_for(lambda: found(self.messages), timeout), self.messages
            return list(self.messages)

    def sent_by(self, action) -> list[list[str]]:
        """The messages `action` sent: those before a mark sent after it (one socket's queue keeps their order)."""
        before = len(self.messages)
        action()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as marker:
            marker.sendto(b"MARK", notify_address(self.env))
        messages = self.wait_for(lambda m: ["MARK"] in m[before:])[before:]
        with self.got:
            self.messages.remove(["MARK"])
        return messages[:messages.index(["MARK"])]

    def close(self) -> None:
        self.socket.close()
        shutil.rmtree(self.folder)


@pytest.fixture(params=["path", "abstract"])
def manager(request):
    manager = Manager(request.param)
    yield manager
    manager.close()


def frames(folder: Path, count: int) -> Path:
    """A folder of `count` copies of one photo: a camera that shows what was remembered, at 2 frames a second."""
    photo = scene_file(folder.parent / "scene", 1)
    folder.mkdir()
    for k in range(count):
        shutil.copy(photo, folder / f"{k:03d}.png")
    return folder


def test_a_run_says_ready_with_its_status_pings_while_it_watches_and_says_stopping(run, tmp_path, manager,
                                                                                    monkeypatch):
    run("remember", "bo", scene_file(tmp_path / "photos", 1))
    monkeypatch.setenv("NOTIFY_SOCKET", manager.env)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # a ping every second while the loop turns
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    rc, _, err = run("run", "--source", frames(tmp_path / "door", 8), "--mute")  # 4 s of frames
    assert rc == 0, err
    messages = manager.wait_for(lambda m: m and "STOPPING=1" in m[-1], timeout=5)
    ready, *during, stopping = messages
    assert ready[0] == "READY=1" and "WATCHDOG=1" in ready  # (every part fresh as the watchdog starts)
    assert re.fullmatch(r"STATUS=watching 1 camera, 1 concept; (no frame yet|last frame \d+\.\d s ago)",
                        ready[-1])
    assert any("WATCHDOG=1" in m for m in during)  # pinged while it watched (that each part must check in: below)
    assert not any("READY=1" in m or "STOPPING=1" in m for m in during)
    assert stopping == ["STOPPING=1", "STATUS=stopping"]


def test_nothing_is_sent_and_no_thread_started_without_a_notify_socket(run, tmp_path, manager, monkeypatch):
    # (a unit of Type=simple, or a terminal: the variables of a watchdog alone mean nothing)
    run("remember", "bo", scene_file(tmp_path / "photos", 1))
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    started = []
    monkeypatch.setattr(Supervisor, "_run", lambda self: started.append(self))
    rc, _, err = run("run", "--source", frames(tmp_path / "door", 2), "--mute")
    assert rc == 0, err
    assert started == [] and manager.messages == []


@pytest.fixture
def parts(monkeypatch):
    """The parts a run's watchdog waits for, each with whether it checked in: {name: beaten}."""
    registered, beaten = [], set()
    heartbeat, beat = Supervisor.heartbeat, Heartbeat.beat
    monkeypatch.setattr(Supervisor, "heartbeat",
                        lambda self, name: registered.append(heartbeat(self, name)) or registered[-1])
    monkeypatch.setattr(Heartbeat, "beat", lambda self: beaten.add(self) or beat(self))
    return lambda: {h.name: h in beaten for h in registered}


def test_run_with_the_api_waits_for_its_event_loop_too(run, tmp_path, parts):
    run("remember", "bo", scene_file(tmp_path / "photos", 1))
    rc, _, err = run("run", "--source", frames(tmp_path / "door", 2), "--mute", "--serve", "127.0.0.1:0")
    assert rc == 0, err
    assert parts() == {"the frame loop": True, "the companion API": True}


class QuietMicrophone:
    """Stands in for the microphone of `run --voice`: silence, a chunk at a time, until it is closed."""

    def __init__(self, reopen: bool = False, waiting=None):
        self.closed = threading.Event()

    def chunks(self):
        from edge_rap.speech.audio import CHUNK

        while not self.closed.wait(0.01):
            yield np.zeros(CHUNK, np.float32)

    def close(self) -> None:
        self.closed.set()


def test_run_with_voice_waits_for_its_listener_too(run, tmp_path, monkeypatch, parts):
    pytest.importorskip("jellyfish", reason="the voice extra is not installed (pip install 'edge_rap[voice]')")
    import edge_rap.speech.asr
    import edge_rap.speech.audio
    import edge_rap.speech.vad

    monkeypatch.setattr(edge_rap.speech.audio, "Microphone", QuietMicrophone)
    monkeypatch.setattr(edge_rap.speech.asr, "Transcriber", lambda *a, **k: None)  # (silence: never asked)
    monkeypatch.setattr(edge_rap.speech.vad, "SileroVad", lambda: lambda chunk: 0.0)
    run("remember", "bo", scene_file(tmp_path / "photos", 1))
    rc, _, err = run("run", "--source", frames(tmp_path / "door", 2), "--mute", "--voice")
    assert rc == 0, err
    assert parts() == {"the frame loop": True, "the voice listener": True}


def test_the_frame_loop_checks_in_before_each_frame(tmp_path):
    from test_daemon import ScriptedHousehold, write_frames

    readings = itertools.count()
    supervisor = Supervisor(Notifier(None), clock=lambda: float(next(readings)))
    home = ScriptedHousehold(tmp_path / "memory")
    recognize, beats = home.recognize, []
    home.recognize = lambda image: beats.append(daemon.heartbeat.last) or recognize(image)
    source = parse_source(f"porch={write_frames(tmp_path / 'frames', [40, 255, 40, 255, 40, 255])}")
    daemon = Daemon(home, DaemonOptions((source,), realtime=False), lambda event: None, supervisor=supervisor)
    daemon.run(threading.Event())
    assert len(beats) >= 3 and beats == sorted(set(beats))  # a new beat before each recognised frame


def test_the_frame_loop_checks_in_while_its_camera_hangs_in_opening(tmp_path, monkeypatch):
    # A camera away (unplugged, a stream that never answers) is no hang of the daemon: the loop turns without it.
    import cv2
    from test_daemon import HangingStream, ScriptedHousehold

    monkeypatch.setattr(cv2, "VideoCapture", HangingStream)
    monkeypatch.setattr(HangingStream, "gate", threading.Event())
    stop, readings = threading.Event(), itertools.count()

    def clock() -> float:
        reading = next(readings)
        if reading == 10:
            stop.set()  # the run ends once the loop has checked in this often
        return float(reading)

    supervisor = Supervisor(Notifier(None), clock=clock)
    options = DaemonOptions((parse_source("door=rtsp://camera.invalid/door"),))
    daemon = Daemon(ScriptedHousehold(tmp_path / "memory"), options, lambda event: None, supervisor=supervisor)
    deadline = threading.Timer(60, stop.set)  # (only so that a loop that never checks in fails instead of hanging)
    deadline.start()
    try:
        daemon.run(stop)
    finally:
        deadline.cancel()
        HangingStream.gate.set()
    assert daemon.heartbeat.last >= 10


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_watchdog_is_pinged_only_while_every_part_checks_in(manager, capfd, caplog):
    clock = FakeClock()
    supervisor = Supervisor(Notifier(notify_address(manager.env)), watchdog_s=10.0, clock=clock)
    loop, voice, api = (supervisor.heartbeat(name) for name in ("the frame loop", "the voice listener", "the API"))

    def after(seconds: float, *beating) -> list[list[str]]:
        """What is sent `seconds` later, each of `beating` having checked in just before."""
        clock.now += seconds
        for heartbeat in beating:
            heartbeat.beat()
        return manager.sent_by(supervisor.tick)

    assert after(0, loop, voice, api) == [["WATCHDOG=1"]]
    assert after(2, loop, voice, api) == []  # the next ping is due at half the interval
    assert after(3, loop, voice) == [["WATCHDOG=1"]]
    api.retire()  # a part that ended by design (the voice loop when its microphone failed) is waited for no more
    assert after(5, loop) == [["WATCHDOG=1"]]  # the voice listener checked in 5 s ago
    assert after(5, loop) == [["WATCHDOG=1"]]  # 10 s ago: not over the interval
    with caplog.at_level(logging.WARNING, logger="edge_rap.daemon.notify"):
        assert after(5, loop) == []  # 15 s: it is stuck, and systemd kills the daemon 10 s after the last ping
        assert "the voice listener has made no progress for over 10 s" in caplog.text
        assert "Thread 0x" in capfd.readouterr().err  # every thread's stack, for the bug report
        assert after(5, loop) == []
        assert after(5, loop, voice) == [["WATCHDOG=1"]]  # back before systemd's limit: said, and pinged again
        assert "the voice listener makes progress again" in caplog.text
        assert after(5, voice) == [["WATCHDOG=1"]]
        assert after(5, voice) == [["WATCHDOG=1"]]  # the frame loop's last turn was 10 s ago
        assert after(5, voice) == []  # 15 s: the frame loop is stuck
    assert [r.getMessage().split(" has ")[0] for r in caplog.records if "no progress" in r.getMessage()] == [
        "the voice listener", "the frame loop"]


def test_parts_stuck_together_write_every_threads_stack_once(manager, capfd):
    clock = FakeClock()
    supervisor = Supervisor(Notifier(notify_address(manager.env)), watchdog_s=10.0, clock=clock)
    for name in ("the frame loop", "the voice listener"):
        supervisor.heartbeat(name)
    clock.now += 11
    assert manager.sent_by(supervisor.tick) == []
    assert capfd.readouterr().err.count("Current thread 0x") == 1


def test_the_status_line_is_sent_when_it_changed_at_most_every_10_s(manager, monkeypatch):
    monkeypatch.setattr(Supervisor, "_run", lambda self: None)  # (the thread's ticks: this test's own, on its clock)
    clock, status = FakeClock(), ["watching 1 camera, 0 concepts; no frame yet"]
    supervisor = Supervisor(Notifier(notify_address(manager.env)), clock=clock)
    assert manager.sent_by(lambda: supervisor.ready(lambda: status[0])) == [["READY=1", f"STATUS={status[0]}"]]
    status[0] = "watching 1 camera, 0 concepts; last frame 0.2 s ago"
    clock.now += 5
    assert manager.sent_by(supervisor.tick) == []
    clock.now += 5
    assert manager.sent_by(supervisor.tick) == [[f"STATUS={status[0]}"]]
    clock.now += 10
    assert manager.sent_by(supervisor.tick) == []  # unchanged
    assert manager.sent_by(supervisor.stopping) == [["STOPPING=1", "STATUS=stopping"]]


def test_a_notify_socket_that_refuses_is_said_once_at_debug_level_and_never_raises(tmp_path, caplog):
    gone = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # systemd restarted: its socket file, no one reading
    gone.bind(str(tmp_path / "n"))
    gone.close()
    for address in (str(tmp_path / "n"), str(tmp_path / "nowhere")):  # ECONNREFUSED, ENOENT
        caplog.clear()
        supervisor = Supervisor(Notifier(address), watchdog_s=1.0)
        beat = supervisor.heartbeat("the frame loop")
        with caplog.at_level(logging.DEBUG, logger="edge_rap.daemon.notify"):
            supervisor.ready(lambda: "watching")
            beat.beat()
            supervisor.tick()
            supervisor.stopping()
        assert [r.levelno for r in caplog.records] == [logging.DEBUG], caplog.text
        assert "refused" in caplog.text


def test_notify_socket_addresses():
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@/org/freedesktop/systemd1/notify/1") == "\0/org/freedesktop/systemd1/notify/1"
    assert notify_address("") is None and notify_address(None) is None
    assert notify_address("vsock:2:1234") is None  # a VM's manager: not spoken to here


def watched_frame_loop() -> tuple[FakeClock, Supervisor, Heartbeat]:
    """A fake clock, a supervisor with a 10 s watchdog on it, and the frame loop's heartbeat (systemd not told)."""
    clock = FakeClock()
    supervisor = Supervisor(Notifier(None), watchdog_s=10.0, clock=clock)
    return clock, supervisor, supervisor.heartbeat("the frame loop")


def in_a_thread_of_its_own(part: Callable[[], None]) -> None:
    """Run `part` in a thread as a daemon's part runs (a heartbeat is its thread's), and wait for it."""
    worker = threading.Thread(target=part)
    worker.start()
    worker.join()


def test_a_part_loading_a_model_is_no_hang_until_its_allowance_ends():
    # face models load at the first person seen, in the frame loop: on a Jetson TensorRT builds their engine then,
    # minutes with no beat, and the watchdog restarted the daemon before the engine was built, at every start
    clock, supervisor, loop = watched_frame_loop()
    seen = []

    def frame_loop():
        loop.beat()
        with long_call("loading facenet.onnx", up_to_s=60):
            clock.now += 50
            seen.append(supervisor.stale())
            clock.now += 20
            seen.append(supervisor.stale())  # past its allowance: a load that hangs is a hang

    in_a_thread_of_its_own(frame_loop)
    assert seen == [[], ["the frame loop"]]
    assert supervisor.stale() == []  # the load's end counts as progress


def test_opening_a_model_is_a_long_call_of_the_part_whose_thread_opens_it(model_cache, monkeypatch):
    import onnxruntime

    from edge_rap.models.sessions import open_session

    clock, supervisor, loop = watched_frame_loop()
    supervisor.heartbeat("the voice listener")  # beaten by no one here: a part in another thread, stopped
    real, seen = onnxruntime.InferenceSession, []

    def slow_to_build(*args, **kwargs):
        clock.now += 100  # (an engine being built)
        seen.append(supervisor.stale())
        return real(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", slow_to_build)
    model = next(model_cache.glob("*-int8/*.onnx"))

    def frame_loop():
        loop.beat()
        open_session(model, "cpu")

    in_a_thread_of_its_own(frame_loop)
    assert seen == [["the voice listener"]]  # the loop was loading; the listener, in another thread, had stopped


def test_a_part_waiting_for_the_assistant_behind_a_long_answer_is_no_hang_and_behind_a_stuck_one_is():
    # The announcer, the voice listener and the API ask one VLM in turn: a question waits behind an announcement
    # being generated at a few tokens a second on a CPU (minutes), which the watchdog took for the listener's hang.
    from edge_rap.household import _OneAtATime
    from edge_rap.liveness import Turns, progress

    clock = FakeClock()
    supervisor = Supervisor(Notifier(None), watchdog_s=10.0, clock=clock)
    voice = supervisor.heartbeat("the voice listener")
    steps, stepped, seen = threading.Semaphore(0), threading.Semaphore(0), []
    holding, go_on = threading.Event(), threading.Event()

    class Generating:
        """An answer that moves on one token each time the test says so, then one that moves on no more."""

        def ask(self, question: str) -> str:
            if question == "announce":
                holding.set()
                for _ in range(6):
                    steps.acquire()
                    clock.now += 4
                    progress()  # (what the VLM says at each token)
                    stepped.release()
                go_on.wait(60)  # stuck: no token comes
            return question

    assistant = _OneAtATime(Generating())
    assistant.turns = Turns(assistant.turns.heartbeat.name, clock)  # (on the test's clock)
    supervisor.watch(assistant.turns.heartbeat)
    assert supervisor.stale() == []  # no one answering: nothing to wait for
    announcer = threading.Thread(target=assistant.ask, args=("announce",))
    announcer.start()
    holding.wait(60)
    answered = []

    def voice_loop() -> None:
        voice.beat()
        answered.append(assistant.ask("where is Bo?"))

    listener = threading.Thread(target=voice_loop)
    listener.start()
    for _ in range(6000):  # (until the listener waits for its turn)
        if voice.behind is not None:
            break
        listener.join(0.01)
    for _ in range(6):  # 24 s of tokens behind which the listener waits
        steps.release()
        stepped.acquire()
        seen.append(supervisor.stale())
    clock.now += 11  # then no token for longer than the watchdog's interval: the answer, and its waiter, stuck
    seen.append(supervisor.stale())
    go_on.set()
    announcer.join(60)
    listener.join(60)
    assert seen == [[]] * 6 + [["the voice listener", "the assistant's answer"]]
    assert answered == ["where is Bo?"] and supervisor.stale() == []  # its turn came: it moves on


def test_a_long_call_inside_another_keeps_the_outer_ones_allowance():
    clock, supervisor, loop = watched_frame_loop()
    seen = []

    def frame_loop():
        loop.beat()
        with long_call("building the engines", up_to_s=300):
            with long_call("loading facenet.onnx", up_to_s=60):
                clock.now += 50
            clock.now += 100  # still within the outer call's allowance
            seen.append(supervisor.stale())

    in_a_thread_of_its_own(frame_loop)
    assert seen == [[]]


def test_a_part_stuck_in_a_long_call_is_said_with_what_it_was_doing(caplog):
    clock, supervisor, loop = watched_frame_loop()

    def frame_loop():
        loop.beat()
        with long_call("loading facenet.onnx", up_to_s=60), caplog.at_level(logging.ERROR):
            clock.now += 61
            supervisor._say_stale(set(supervisor.stale()))

    in_a_thread_of_its_own(frame_loop)
    assert "the frame loop has made no progress for over 10 s (loading facenet.onnx, for longer than its " \
           "allowance)" in caplog.text


def test_a_run_with_a_vlm_waits_for_the_assistant_s_answers_too(tmp_path):
    # an answer that never ends (a driver call that never returns) silences every announcement while the loops turn
    from test_daemon import ScriptedHousehold

    from edge_rap.household import _OneAtATime

    home = ScriptedHousehold(tmp_path / "memory")
    home.vlm, home.assistant = object(), _OneAtATime(object())
    supervisor = Supervisor(Notifier(None), watchdog_s=10.0)
    Daemon(home, DaemonOptions((parse_source("door=rtsp://camera.invalid/door"),)), lambda event: None,
           supervisor=supervisor)
    assert [h.name for h in supervisor.heartbeats] == ["the frame loop", "the assistant's answer"]
    assert supervisor.heartbeats[1] is home.assistant.turns.heartbeat


def test_a_long_call_ending_while_the_watchdog_looks_is_never_the_pings_end():
    # The part's thread ends its long call (or its wait for its turn) between two reads of the pinger's look: a
    # None compared with the time raised in the thread that pings, and systemd restarted a daemon that was well.
    class Ending(Heartbeat):
        readings = {"busy_until": iter([1100.0, None]), "behind": iter([Heartbeat("the answer", FakeClock()), None])}

        def __getattribute__(self, name):
            readings = type(self).readings
            return next(readings[name], None) if name in readings else super().__getattribute__(name)

    supervisor = Supervisor(Notifier(None), watchdog_s=10.0, clock=FakeClock())
    supervisor.watch(Ending("the frame loop", supervisor.clock))
    supervisor.clock.now += 60
    assert supervisor.stale() == []


def test_the_status_line_says_a_settings_file_edited_since_the_start(tmp_path, caplog):
    from test_daemon import ScriptedHousehold, write_frames

    from edge_rap.daemon.settings_file import SettingsFile

    path = tmp_path / "run.toml"
    path.write_text("[daemon]\ncooldown = 30\n")
    watched = SettingsFile.before_reading(path)
    path.write_text("[daemon]\ncooldown = 5\n")  # while the models load
    source = parse_source(f"porch={write_frames(tmp_path / 'frames', [40, 255])}")
    daemon = Daemon(ScriptedHousehold(tmp_path / "memory"), DaemonOptions((source,), realtime=False),
                    lambda event: None, settings_file=watched)
    daemon.run(threading.Event())
    assert any(m.startswith(f"{path} changed; run goes on") for m in caplog.messages)
    assert daemon.status().endswith("; run.toml changed: restart to use it")
