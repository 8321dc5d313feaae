"""Perception: pixels from photos and cameras into vectors, regions (dense matching or a detector) and faces."""
