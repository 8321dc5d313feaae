"""A live API server on a free loopback port for the serve tests: on a household with the fast stand-in
embedder (plumbing and security) or with the real default embedder (what a household gets)."""

from __future__ import annotations

import io
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import pytest
from fakes import fake_memory

from edge_rap.config import Profile, Settings
from edge_rap.household import Household
from edge_rap.serve.api import Limits
from edge_rap.serve.app import create_app
from edge_rap.serve.guard import AttemptLimit
from edge_rap.serve.patience import Patience
from edge_rap.serve.server import Tls, start_server_thread
from edge_rap.serve.token import TOKEN_FILE


@dataclass
class Live:
    url: str
    token: str
    home: Household

    def client(self, token: str | None = "own") -> httpx.Client:
        token = self.token if token == "own" else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@contextmanager
def live_server(settings: Settings, fake: bool = True, limits: Limits = Limits(),
                attempts: AttemptLimit = AttemptLimit(failures=10_000), stats=None, latest=None,
                patience: Patience | None = None, tls: Tls | None = None) -> Iterator[Live]:
    home = Household(settings)
    if fake:
        home.__dict__["memory"] = fake_memory(settings.memory)
    handle = start_server_thread(create_app(home, stats, limits, attempts, latest), "127.0.0.1", 0, tls,
                                 patience=patience)
    try:
        yield Live(handle.url, (settings.memory / TOKEN_FILE).read_text().strip(), home)
    finally:
        handle.stop()
        home.close()


def hold_recognition(live: Live, monkeypatch, most_s: float) -> tuple[threading.Event, threading.Event]:
    """Each recognition the server starts waits (holding the model) until `release` is set, or `most_s` passes;
    (started, release): `started` is set as the first one begins."""
    started, release = threading.Event(), threading.Event()
    recognize = live.home.recognize

    def held(image):
        started.set()
        release.wait(most_s)
        return recognize(image)

    monkeypatch.setattr(live.home, "recognize", held)
    return started, release


def self_signed(folder: Path) -> Tls:
    """A certificate for 127.0.0.1 and its key, made by openssl in `folder` (a test needing one skips without it)."""
    import shutil
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("making a test certificate needs openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return Tls(str(cert), str(key))


def fake_settings(tmp_path: Path) -> Settings:
    """Settings whose model cache is never used (the stand-in embedder replaces the model)."""
    return Settings(home=tmp_path / "home", memory=tmp_path / "memory", models=tmp_path / "models", profile=Profile())


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def jpeg(pixels: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def photo_files(*blobs: bytes, names: tuple[str, ...] = ()) -> list:
    return [("photo", (names[k] if k < len(names) else f"p{k}.png", b, "image/png")) for k, b in enumerate(blobs)]


def warnings_said(caplog) -> list[str]:
    """The warnings and errors logged, but for the server's stop's own: a client has its answer before the server
    has ended its request, so a stop right after may say it waits for that one."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name != "edge_rap.serve.drain"]
