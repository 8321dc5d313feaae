"""How scores become decisions: the settings of every retrieval rule (docs/RETRIEVAL.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetrievalPolicy:
    """How scores become decisions; the defaults are documented in docs/RETRIEVAL.md."""

    top_k: int = 5
    z: float = 4.0  # per-concept threshold = negative-bank mean + z * spread
    ceiling: float = 0.99  # ... but never above this: a copy of the concept's own photo always clears it
    threshold: float | None = None  # the space's threshold; None = the embedder's calibrated one
    margin: float = 0.05  # a concept this far below the best one is "clearly beaten"
    max_candidates: int = 8  # concepts confirmed by crops per frame (the best by dense-matching score)
    dense_shortlist: int = 128  # concepts dense matching compares a frame with: the best by the query views
    same_place_iou: float = 0.5  # boxes overlapping more than this are the same place
    fills_frame: float = 0.2  # a whole-frame hit this far above a crop-only one: the frame is its photo
    query_grid: int = 3  # half-size crops per side embedded with the whole image (retrieval alone)
    placing_query_grid: int = 2  # the same where dense matching also places: its crops find the small ones
    contested_margin: float = 0.15  # a proposal whose pooled box matches another concept this much better: no crop
    claim_lead: float = 0.1  # a crop proposed for one concept places another that leads every concept by this
    second_peak: float = 0.75  # a second hot place this high (share of the first's height) is cropped too
    grow: tuple[float, ...] = (1.45,)  # a placed box is tried this much larger too: dense peaks are parts
    grow_tolerance: float = 0.04  # the largest tried box within this of the best score is kept


#: Used only for a model exported without calibration (no sample photos were available).
UNCALIBRATED_THRESHOLD = 0.6
