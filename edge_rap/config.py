"""Settings: where memory and models live, and the device profile (device_configs/*.toml), validated once."""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge_rap.errors import EdgeRapError
from edge_rap.folders import reachable
from edge_rap.output import quoted
from edge_rap.shipped import shipped_dir
from edge_rap.userfiles import read_whole

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROFILE_DIR = shipped_dir("device_configs")
PROVIDERS = ("auto", "cpu", "cuda", "tensorrt")


REFERENCE_MODES = ("image", "text")


@dataclass(frozen=True)
class VlmProfile:
    """The generate step on this device: which GGUF VLM (none = template answers), offload and prompt sizes."""

    model: str = ""  # a registry name (models/vlm_registry.json, pulled) or a .gguf path; "" = template mode
    mmproj: str = ""  # the projector's .gguf when `model` is a path
    n_gpu_layers: int = 0  # layers offloaded to CUDA (-1 = all); 0 = CPU
    n_ctx: int = 4096
    threads: int = 0  # 0 = llama.cpp's default
    references: str = "image"  # "image": reference photos in the prompt; "text": names, descriptions, boxes only
    max_references: int = 4
    max_tokens: int = 128


@dataclass(frozen=True)
class Profile:
    """What a device class runs: which models on which providers with how many threads, what it captures,
    and its limits."""

    name: str = "x86-cpu"
    embedder: str = "efficientnet-lite0-int8"
    provider: str | tuple[str, ...] = "cpu"  # "auto", one provider, or providers to try in order
    threads: int = 0
    embed_batch: int = 16  # images per embedder run: at 320 px, 16 hold 100 MB of activations, 4 hold 33 MB
    top_k: int = 5
    max_candidates: int = 8  # concepts dense matching proposes per frame; each costs one or two crops
    detector: str = ""  # an ONNX detector from the model cache for every command's regions ("" = dense matching)
    capture_width: int = 0  # frames wider are shrunk on capture (0 = as captured)
    capture_fps: float = 0.0  # live sources: frames kept per second at most (0 = all)
    min_face: int = 32  # smallest face side looked for in recognised frames, pixels (20 costs twice as much)
    rss_mb: int = 0  # the daemon warns when its resident memory passes this (0 = no limit)
    snapshot_count: int = 1000
    snapshot_days: float = 7.0
    events_days: float = 365.0  # the event log keeps this many days (0 = all), and each concept's last sighting
    vlm: VlmProfile = field(default_factory=VlmProfile)
    reason: str = ""  # why this profile was chosen


@dataclass(frozen=True)
class Settings:
    home: Path
    memory: Path
    models: Path
    profile: Profile

    @property
    def embedder(self) -> str:
        return self.profile.embedder


def environ(name: str) -> str | None:
    """An environment variable's value, None where it is unset or blank: `EDGE_RAP_HOME=" "` is no folder named
    " ", nor `EDGE_RAP_DEVICE=" "` a profile (as EDGE_RAP_SERVE_HOSTS and EDGE_RAP_MAX_MEGAPIXELS read blank)."""
    value = os.environ.get(name)
    return value if value and value.strip() else None


def default_home() -> Path:
    env = environ("EDGE_RAP_HOME")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "edge-rap"


def model_cache() -> Path:
    """The model cache: `$EDGE_RAP_MODELS`, else (unset or blank, as EDGE_RAP_HOME: not the current folder) the
    default home's `models`."""
    return Path(environ("EDGE_RAP_MODELS") or default_home() / "models").expanduser()


def detect_profile(root: Path = Path("/")) -> tuple[str, str]:
    """(profile name, why): a Jetson by its L4T release file and device-tree model, then an NVIDIA driver,
    else the CPU."""
    if (root / "etc/nv_tegra_release").exists():
        model = ""
        for path in ("proc/device-tree/model", "sys/firmware/devicetree/base/model"):
            try:
                model = (root / path).read_bytes().decode("utf-8", "replace").strip("\x00 \n")
                break
            except OSError:
                continue
        name = ("jetson-agx-orin" if "AGX Orin" in model else "jetson-orin-nano" if "Orin Nano" in model
                else "jetson-orin")
        return name, f"Jetson: /etc/nv_tegra_release, device-tree model {model or 'unknown'!r}"
    if (root / "proc/driver/nvidia/version").exists():
        return "x86-cuda", "NVIDIA driver found (/proc/driver/nvidia/version)"
    return "x86-cpu", "no Jetson release file and no NVIDIA driver: the CPU"


# Every section and key a profile may hold, with its type: anything else is refused up front, naming the key.
SCHEMA: dict[str, dict[str, type]] = {
    "device": {"name": str},
    "embedder": {"model": str, "provider": str, "providers": list, "threads": int, "batch": int},
    "retrieve": {"top_k": int, "max_candidates": int},
    "detector": {"model": str},
    "capture": {"width": int, "fps": float},
    "faces": {"min_face": int},
    "limits": {"rss_mb": int, "snapshot_count": int, "snapshot_days": float, "events_days": float},
    "vlm": {"model": str, "mmproj": str, "n_gpu_layers": int, "n_ctx": int, "threads": int, "references": str,
            "max_references": int, "max_tokens": int},
}


#: The smallest value of each number that has one (threads and min_face are checked with their own reasons).
MINIMUMS: dict[tuple[str, str], int] = {
    ("embedder", "batch"): 1, ("retrieve", "top_k"): 1, ("retrieve", "max_candidates"): 1, ("capture", "width"): 0,
    ("capture", "fps"): 0, ("limits", "rss_mb"): 0, ("limits", "snapshot_count"): 1, ("limits", "snapshot_days"): 0,
    ("limits", "events_days"): 0, ("vlm", "n_gpu_layers"): -1, ("vlm", "n_ctx"): 256, ("vlm", "max_references"): 0,
    ("vlm", "max_tokens"): 1,
}
#: Keys where "" means none (no detector, no VLM).
MAY_BE_EMPTY = {("detector", "model"), ("vlm", "model"), ("vlm", "mmproj")}
#: More threads than this is a typo: onnxruntime hung and llama.cpp crashed on 100 000.
MAX_THREADS = 256


def _trimmed(name: str | None) -> str | None:
    """A profile's name without the spaces around it (EDGE_RAP_DEVICE=" x86-cpu" was "not found"); a .toml file's
    path is left as given, since a path may begin or end with a space."""
    return name if name is None or name.strip().endswith(".toml") else name.strip()


def load_profile(name: str | None = None) -> Profile:
    name = _trimmed(name)
    name = None if name == "auto" else name
    env = _trimmed(environ("EDGE_RAP_DEVICE"))
    from_env = not name and (env or "auto") != "auto"
    name = name or (env if from_env else None)
    reason = "named with --device" if name and not from_env else "EDGE_RAP_DEVICE" if from_env else ""
    if not name:
        name, reason = detect_profile()
    path = Path(name) if name.endswith(".toml") else PROFILE_DIR / f"{name}.toml"
    where = f"{path} (from EDGE_RAP_DEVICE)" if from_env else str(path)
    if not reachable(path, Path.exists):  # (one behind a folder this account may not search: one line)
        if name == "x86-cpu":
            return Profile(reason=reason)  # installed without the repository's device_configs/: built-in defaults
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))) or "none installed"
        raise EdgeRapError(f"device profile {quoted(name)} not found: no {where}; the profiles are {known}, or a .toml "
                           "file's path")
    try:
        raw = tomllib.loads(read_whole(path, "a device profile").decode("utf-8"))
    except UnicodeDecodeError as e:
        raise EdgeRapError(f"{where}: invalid device profile (not UTF-8 text: byte {e.start})") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise EdgeRapError(f"{where}: invalid device profile ({e})") from None
    _check_schema(raw, where)
    emb, ret, capture, limits = (raw.get(k, {}) for k in ("embedder", "retrieve", "capture", "limits"))
    providers = tuple(emb["providers"]) if "providers" in emb else emb.get("provider", "auto")
    profile = Profile(
        name=raw.get("device", {}).get("name", path.stem),
        embedder=emb.get("model", Profile.embedder),
        provider=providers,
        threads=emb.get("threads", 0),
        embed_batch=emb.get("batch", Profile.embed_batch),
        top_k=ret.get("top_k", 5),
        max_candidates=ret.get("max_candidates", Profile.max_candidates),
        detector=raw.get("detector", {}).get("model", ""),
        capture_width=capture.get("width", 0),
        capture_fps=float(capture.get("fps", 0.0)),
        min_face=raw.get("faces", {}).get("min_face", Profile.min_face),
        rss_mb=limits.get("rss_mb", 0),
        snapshot_count=limits.get("snapshot_count", Profile.snapshot_count),
        snapshot_days=float(limits.get("snapshot_days", Profile.snapshot_days)),
        events_days=float(limits.get("events_days", Profile.events_days)),
        vlm=VlmProfile(**raw.get("vlm", {})),
        reason=f"{reason}: {path.name}" if reason else path.name,
    )
    for provider in (providers,) if isinstance(providers, str) else providers:
        if provider not in PROVIDERS or (provider == "auto" and not isinstance(providers, str)):
            raise EdgeRapError(f"{where}: [embedder] provider must be one of {', '.join(PROVIDERS)}, "
                               f"not {quoted(provider)}")
    for section, threads in (("embedder", profile.threads), ("vlm", profile.vlm.threads)):
        if not 0 <= threads <= MAX_THREADS:
            raise EdgeRapError(f"{where}: [{section}] threads must be 0 (all cores) to {MAX_THREADS}, not {threads}")
    if profile.min_face < 12:
        raise EdgeRapError(f"{where}: [faces] min_face must be 12 or more (MTCNN's smallest window), "
                           f"not {profile.min_face}")
    if profile.vlm.references not in REFERENCE_MODES:
        raise EdgeRapError(f"{where}: [vlm] references must be one of {', '.join(REFERENCE_MODES)}, "
                           f"not {profile.vlm.references!r:.40}")
    return profile


def _check_schema(raw: dict, where: str) -> None:
    """Refuse unknown sections and keys and values of the wrong type (a bool is not an integer here)."""
    for section, table in raw.items():
        keys = SCHEMA.get(section)
        if keys is None:
            raise EdgeRapError(f"{where}: unknown section {quoted(section)} (known: {', '.join(SCHEMA)})")
        if not isinstance(table, dict):
            raise EdgeRapError(f"{where}: {section} must be a section ([{section}]), not {table!r:.40}")
        for key, value in table.items():
            if key not in keys:
                raise EdgeRapError(f"{where}: unknown key [{section}] {quoted(key)} (known: {', '.join(keys)})")
            wanted = keys[key]
            accepted = (int, float) if wanted is float else wanted
            ok = isinstance(value, accepted) and not isinstance(value, bool)
            if wanted is list:
                ok = ok and bool(value) and all(isinstance(v, str) for v in value)
            elif wanted is float:
                ok = ok and math.isfinite(value)
            elif wanted is str and (section, key) not in MAY_BE_EMPTY:
                ok = ok and bool(value.strip())
            if not ok:
                kind = {int: "an integer", float: "a finite number", list: "a non-empty list of strings"}.get(
                    wanted, "a non-empty string")
                raise EdgeRapError(f"{where}: [{section}] {key} must be {kind}, not {value!r:.40}")
            minimum = MINIMUMS.get((section, key))
            if minimum is not None and value < minimum:
                raise EdgeRapError(f"{where}: [{section}] {key} must be {minimum} or more, not {value}")


#: What to give instead of an empty option that has a default (its default when left out).
LEFT_OUT = {"--memory": "give a folder, or leave --memory out for the default home",
            "--embedder": "give a model name or folder, or leave --embedder out for the profile's",
            "--device": "give a profile name or .toml, or leave --device out for auto"}


#: The detector name that asks for dense matching alone, whatever the device profile's `[detector] model` names
#: (`--detector none`, run's `detector = "none"`): without it only another --device could.
NO_DETECTOR = "none"


def with_detector(profile: Profile, detector: str | None) -> Profile:
    """The profile with the detector a command was given: None keeps the profile's, NO_DETECTOR is none, in any
    case (`--detector None` was looked for as a model of that name)."""
    if detector is None:
        return profile
    return replace(profile, detector="" if detector.strip().casefold() == NO_DETECTOR else detector)


def load_settings(memory: str | None = None, embedder: str | None = None, device: str | None = None,
                  detector: str | None = None) -> Settings:
    """None means the default; an empty value is refused, not taken for it: `--memory "$UNSET"` must not forget a
    concept in the household's real memory, nor `--device "$UNSET"` run another profile than the one meant.
    `detector`: --detector, over the profile's (with_detector)."""
    for option, value in (("--memory", memory), ("--embedder", embedder), ("--device", device)):
        if value is not None and not value.strip():
            raise EdgeRapError(f"{option} {quoted(value)} is empty (an unset variable?): {LEFT_OUT[option]}")
    home = default_home()
    profile = load_profile(device)
    if embedder:
        profile = replace(profile, embedder=embedder)
    profile = with_detector(profile, detector)
    return Settings(home=home, memory=Path(memory).expanduser() if memory else home, models=model_cache(),
                    profile=profile)
