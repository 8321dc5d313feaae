"""`events --json` written in batches, and json_line's copy of a value skipped where no string needs it."""

from __future__ import annotations

import io
import json
import random

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


#: What the random strings are made of: a high and a low surrogate (together they dump as an emoji does), a byte of
#: a name not UTF-8, emoji, other text past ASCII, and what json.dumps escapes or a `\ud...` escape is spelled with.
PIECES = ["\ud83d", "\udc31", "\udcff", "\ud800", "\udfff", "\U0001f431", "\U0001f600", "\u200d", "é", "\ud55c",
          "\\", "u", "d", "8", "c", "f", '"', "\n", "\x7f", "a", " "]


def random_value(rng: random.Random, depth: int = 0):
    """A string of random PIECES, or a list, tuple or dict (its keys such strings too) of random values."""
    kind = rng.randrange(5 if depth < 3 else 1)
    if kind == 0:
        return "".join(rng.choice(PIECES) for _ in range(rng.randrange(8)))
    if kind == 1:
        return {random_value(rng, 3): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    if kind == 2:
        return tuple(random_value(rng, depth + 1) for _ in range(rng.randrange(4)))
    return [random_value(rng, depth + 1) if rng.random() < 0.8 else rng.choice([1, 2.5, None, True])
            for _ in range(rng.randrange(4))]


def test_json_line_is_the_copy_dumped_for_random_surrogates_pairs_and_emoji():
    rng = random.Random(7)
    for _ in range(3000):
        value = random_value(rng)
        assert json_line(value) == json.dumps(text_only(value)), ascii(value)


def test_json_line_copies_a_value_with_an_emoji_only_where_a_string_holds_a_surrogate(monkeypatch):
    # `🐱 Mimi` dumps as "\ud83d\udc31 Mimi", as the two surrogates "\ud83d\udc31" in a string do: every batch of
    # its events was copied
    copied = []
    monkeypatch.setattr(output, "text_only", lambda value: copied.append(value) or value)
    events = [{"name": "\U0001f431 Mimi", "said": "I can see <\U0001f431 Mimi>."}]
    assert json_line(events) == json.dumps(events) and copied == []
    json_line([*events, {"name": "\ud83d\udc31 Mimi"}])
    assert len(copied) == 1


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
