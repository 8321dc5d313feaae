"""Where the files that ship beside the code are: device profiles and model manifests.

In a checkout (and an editable install) they are the repository's top-level `device_configs/` and `models/`;
a wheel carries them as `edge_rap/device_configs/` and `edge_rap/model_manifests/` (pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_PACKAGED_AS = {"device_configs": "device_configs", "models": "model_manifests"}


def shipped_dir(folder: str) -> Path:
    """The folder `device_configs` or `models`, wherever this installation keeps it."""
    packaged = _PACKAGE / _PACKAGED_AS[folder]
    return packaged if packaged.is_dir() else _PACKAGE.parent / folder
