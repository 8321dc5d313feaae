"""The SQL edge_rap runs binds its values as Python 3.14's sqlite3 takes them."""

from __future__ import annotations

import re
from pathlib import Path

import edge_rap

# A numbered placeholder, `?1`: sqlite3 counts it a named one, and a sequence bound to it warns from Python 3.12 and
# is a ProgrammingError from 3.14 (the prune, "where was Bo last seen" and `edit` all failed there)
NUMBERED = re.compile(r"\?\d")


def test_no_sql_in_edge_rap_uses_numbered_placeholders():
    found = [f"{path.name}:{n}" for path in sorted(Path(edge_rap.__file__).parent.rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if NUMBERED.search(line)]
    assert found == []
