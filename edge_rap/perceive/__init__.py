"""Perception: turning pixels into vectors (and, later, regions)."""
