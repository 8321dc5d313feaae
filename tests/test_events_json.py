"""`events --json` written in batches, and json_line's copy of a value skipped where no string needs it."""

from __future__ import annotations

import io
import json

import pytest

from edge_rap import cli, output
from edge_rap.errors import EdgeRapError
from edge_rap.output import json_line, text_only

#: Strings json.dumps writes with a `\ud...`: a byte of a name not UTF-8, another lone surrogate, a character
#: past U+FFFF (a pair), Hangul from U+D000, and a name's own backslash before "udcff"; and plain ones.
NAMES = ["bo", "b\udcffo", "\ud800", "\U0001f600", "\ud55c", "a\\udcff", "\\", "Zoë", ""]


@pytest.mark.parametrize("name", NAMES)
def test_json_line_is_the_copy_dumped(name):
    value = {"name": name, name: [name, (name, 1.5, None)], "n": 3}
    assert json_line(value) == json.dumps(text_only(value))
    assert json_line(name) == json.dumps(text_only(name))


def test_json_line_copies_no_value_without_a_surrogate(monkeypatch):
    # the copy (text_only walking every dict) took two thirds of `events --json` on 300 000 events
    copied = []
    monkeypatch.setattr(output, "text_only", lambda value: copied.append(value) or value)
    plain = [{"name": "bo", "said": "I can see <bo>. \\ud"}]
    assert json_line(plain) == json.dumps(plain)
    assert copied == []
    json_line({"name": "b\udcffo"})
    assert copied == [{"name": "b\udcffo"}]


class Writes(io.StringIO):
    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 5, 6])
def test_a_json_list_written_in_batches_is_the_list_whole(monkeypatch, count):
    items = [{"type": "arrived", "name": NAMES[k % len(NAMES)], "score": k / 3} for k in range(count)]
    out = Writes()
    monkeypatch.setattr("sys.stdout", out)
    cli._print_json_list(iter(items), batch=2)
    assert out.getvalue() == json_line(items) + "\n"
    assert out.writes <= -(-count // 2) + 2  # a write a batch (and the end's), not one an item


def test_a_json_list_cut_by_an_error_keeps_what_was_read_and_ends_its_line(monkeypatch):
    # a damaged page met partway: the items read before it are written, the list left unclosed
    def items():
        yield from ({"k": k} for k in range(3))
        raise EdgeRapError("a damaged page")

    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    with pytest.raises(EdgeRapError):
        cli._print_json_list(items(), batch=2)
    assert out.getvalue() == json_line([{"k": k} for k in range(3)])[:-1] + "\n"
