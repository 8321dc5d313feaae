"""Settings: where memory and models live, and the device profile (device_configs/*.toml), validated once."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge_rap.errors import EdgeRapError
from edge_rap.shipped import shipped_dir

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
    """What a device class runs: which embedder, on which provider, with how many threads."""

    name: str = "x86-cpu"
    embedder: str = "efficientnet-lite0-int8"
    provider: str = "cpu"
    threads: int = 0
    top_k: int = 5
    max_candidates: int = 8  # concepts dense matching proposes per frame; each costs one or two crops
    vlm: VlmProfile = field(default_factory=VlmProfile)


@dataclass(frozen=True)
class Settings:
    home: Path
    memory: Path
    models: Path
    profile: Profile

    @property
    def embedder(self) -> str:
        return self.profile.embedder


def default_home() -> Path:
    env = os.environ.get("EDGE_RAP_HOME")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "edge-rap"


def detect_profile_name() -> str:
    """Jetson if the L4T release file is there, x86 with CUDA if the driver is, else the CPU profile."""
    if Path("/etc/nv_tegra_release").exists():
        return "jetson-orin"
    if Path("/proc/driver/nvidia/version").exists():
        return "x86-cuda"
    return "x86-cpu"


# Every section and key a profile may hold, with its type: anything else is refused up front, naming the key.
SCHEMA: dict[str, dict[str, type]] = {
    "device": {"name": str},
    "embedder": {"model": str, "provider": str, "threads": int},
    "retrieve": {"top_k": int, "max_candidates": int},
    "vlm": {"model": str, "mmproj": str, "n_gpu_layers": int, "n_ctx": int, "threads": int, "references": str,
            "max_references": int, "max_tokens": int},
}


def load_profile(name: str | None = None) -> Profile:
    from_env = not name and bool(os.environ.get("EDGE_RAP_DEVICE"))
    name = name or os.environ.get("EDGE_RAP_DEVICE") or detect_profile_name()
    path = Path(name) if name.endswith(".toml") else PROFILE_DIR / f"{name}.toml"
    where = f"{path} (from EDGE_RAP_DEVICE)" if from_env else str(path)
    if not path.exists():
        if name == "x86-cpu":
            return Profile()  # installed without the repository's device_configs/: built-in defaults
        raise EdgeRapError(f"device profile {name!r} not found ({where})")
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise EdgeRapError(f"{where}: invalid device profile (not UTF-8 text: byte {e.start})") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise EdgeRapError(f"{where}: invalid device profile ({e})") from None
    _check_schema(raw, where)
    emb, ret = raw.get("embedder", {}), raw.get("retrieve", {})
    profile = Profile(
        name=raw.get("device", {}).get("name", path.stem),
        embedder=emb.get("model", Profile.embedder),
        provider=emb.get("provider", "auto"),
        threads=emb.get("threads", 0),
        top_k=ret.get("top_k", 5),
        max_candidates=ret.get("max_candidates", Profile.max_candidates),
        vlm=VlmProfile(**raw.get("vlm", {})),
    )
    if profile.provider not in PROVIDERS:
        raise EdgeRapError(f"{where}: provider must be one of {', '.join(PROVIDERS)}, not {profile.provider!r}")
    if profile.top_k < 1 or profile.max_candidates < 1 or profile.threads < 0:
        raise EdgeRapError(f"{where}: top_k and max_candidates must be >= 1, threads >= 0")
    vlm = profile.vlm
    if vlm.references not in REFERENCE_MODES:
        raise EdgeRapError(f"{where}: [vlm] references must be one of {', '.join(REFERENCE_MODES)}")
    if vlm.n_ctx < 256 or vlm.max_references < 0 or vlm.max_tokens < 1 or vlm.threads < 0 or vlm.n_gpu_layers < -1:
        raise EdgeRapError(f"{where}: [vlm] needs n_ctx >= 256, max_references >= 0, max_tokens >= 1, "
                           "threads >= 0, n_gpu_layers >= -1")
    return profile


def _check_schema(raw: dict, where: str) -> None:
    """Refuse unknown sections and keys and values of the wrong type (a bool is not an integer here)."""
    for section, table in raw.items():
        keys = SCHEMA.get(section)
        if keys is None or not isinstance(table, dict):
            raise EdgeRapError(f"{where}: unknown section {section!r} (known: {', '.join(SCHEMA)})")
        for key, value in table.items():
            if key not in keys:
                raise EdgeRapError(f"{where}: unknown key [{section}] {key!r} (known: {', '.join(keys)})")
            wanted = keys[key]
            if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
                kind = "an integer" if wanted is int else "a string"
                raise EdgeRapError(f"{where}: [{section}] {key} must be {kind}, not {value!r:.40}")


def load_settings(memory: str | None = None, embedder: str | None = None, device: str | None = None) -> Settings:
    home = default_home()
    profile = load_profile(device)
    if embedder:
        profile = replace(profile, embedder=embedder)
    models = Path(os.environ.get("EDGE_RAP_MODELS", home / "models")).expanduser()
    return Settings(home=home, memory=Path(memory).expanduser() if memory else home, models=models, profile=profile)
