"""Remember: the concept store (SQLite + image files) and the vector indexes built from it."""
