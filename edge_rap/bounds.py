"""The rule a setting's number keeps, shared so that `run --duration inf` and EDGE_RAP_MAX_MEGAPIXELS=inf are told
the same thing: inf passed "more than 0", which it is, and was then refused as "a positive number"."""

from __future__ import annotations

import math


def why_refused(value: float, positive: bool, unit: str) -> str | None:
    """What a setting's number must be that `value` is not (None where it is that): finite, and more than 0 `unit`
    (`positive`) or 0 or more."""
    if math.isnan(value):
        return "a number"
    if value == math.inf:
        return "a finite number"
    if value < 0 or (positive and value == 0):
        return f"more than 0 {unit}" if positive else "a number of 0 or more"
    return None
