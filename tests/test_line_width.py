"""The house width: README and every Python line in edge_rap/, tests/ and tools/ fit in 120 characters (ruff's E501
at pyproject's line-length, held here because CI runs only pytest). Tables in docs/ are left to be wide."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 120


def _files() -> list[Path]:
    return [ROOT / "README.md"] + sorted(p for folder in ("edge_rap", "tests", "tools")
                                         for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_line_fits_the_house_width(path):
    wide = [f"{number}: {len(line)} characters" for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
            if len(line) > WIDTH]
    assert not wide, f"{path.relative_to(ROOT)} has lines over {WIDTH} characters: {wide}"
