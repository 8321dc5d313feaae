"""Evaluation and the demo: `eval retrieval` / `eval localize` on folders of concepts, the seeded composites
they use, and `make demo`."""
