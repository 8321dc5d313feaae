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


def load_profile(name: str | None = None) -> Profile:
    name = name or os.environ.get("EDGE_RAP_DEVICE") or detect_profile_name()
    path = Path(name) if name.endswith(".toml") else PROFILE_DIR / f"{name}.toml"
    if not path.exists():
        if name == "x86-cpu":
            return Profile()  # installed without the repository's device_configs/: built-in defaults
        raise EdgeRapError(f"device profile {name!r} not found ({path})")
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise EdgeRapError(f"{path}: invalid device profile ({e})") from None
    emb, ret = raw.get("embedder", {}), raw.get("retrieve", {})
    profile = Profile(
        name=raw.get("device", {}).get("name", path.stem),
        embedder=str(emb.get("model", Profile.embedder)),
        provider=str(emb.get("provider", "auto")),
        threads=int(emb.get("threads", 0)),
        top_k=int(ret.get("top_k", 5)),
        max_candidates=int(ret.get("max_candidates", Profile.max_candidates)),
        vlm=_vlm_profile(raw.get("vlm", {}), path),
    )
    if profile.provider not in PROVIDERS:
        raise EdgeRapError(f"{path}: provider must be one of {', '.join(PROVIDERS)}, not {profile.provider!r}")
    if profile.top_k < 1 or profile.max_candidates < 1 or profile.threads < 0:
        raise EdgeRapError(f"{path}: top_k and max_candidates must be >= 1, threads >= 0")
    return profile


def _vlm_profile(raw: dict, path: Path) -> VlmProfile:
    try:
        vlm = VlmProfile(
            model=str(raw.get("model", "")), mmproj=str(raw.get("mmproj", "")),
            n_gpu_layers=int(raw.get("n_gpu_layers", 0)), n_ctx=int(raw.get("n_ctx", 4096)),
            threads=int(raw.get("threads", 0)), references=str(raw.get("references", "image")),
            max_references=int(raw.get("max_references", 4)), max_tokens=int(raw.get("max_tokens", 128)),
        )
    except (TypeError, ValueError) as e:
        raise EdgeRapError(f"{path}: invalid [vlm] section ({e})") from None
    if vlm.references not in REFERENCE_MODES:
        raise EdgeRapError(f"{path}: [vlm] references must be one of {', '.join(REFERENCE_MODES)}")
    if vlm.n_ctx < 256 or vlm.max_references < 0 or vlm.max_tokens < 1 or vlm.threads < 0 or vlm.n_gpu_layers < -1:
        raise EdgeRapError(f"{path}: [vlm] needs n_ctx >= 256, max_references >= 0, max_tokens >= 1, "
                           "threads >= 0, n_gpu_layers >= -1")
    return vlm


def load_settings(memory: str | None = None, embedder: str | None = None, device: str | None = None) -> Settings:
    home = default_home()
    profile = load_profile(device)
    if embedder:
        profile = replace(profile, embedder=embedder)
    models = Path(os.environ.get("EDGE_RAP_MODELS", home / "models")).expanduser()
    return Settings(home=home, memory=Path(memory).expanduser() if memory else home, models=models, profile=profile)
