"""Counts said in words: "1 concept", "2 concepts". A "(s)" after every count read as a form, and doctor's
"(1 concepts)" as a slip."""

from __future__ import annotations


def noun(n: int, singular: str, plural: str = "") -> str:
    """`singular` or its plural (`plural`, else with an s) as `n` asks."""
    return singular if n == 1 else plural or singular + "s"


def counted(n: int, singular: str, plural: str = "") -> str:
    """`n` and the noun in the number it takes."""
    return f"{n} {noun(n, singular, plural)}"
