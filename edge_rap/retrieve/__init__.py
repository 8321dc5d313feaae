"""Retrieve: an image in, the household's concepts present out (retriever.py), by rules that are pure
functions over scores (decide.py), placed in the frame (locate.py), people by their faces (faces.py)."""

from edge_rap.retrieve.decide import mentioned_names, unknown_names
from edge_rap.retrieve.policy import UNCALIBRATED_THRESHOLD, RetrievalPolicy
from edge_rap.retrieve.retriever import Retriever

__all__ = ["Retriever", "RetrievalPolicy", "UNCALIBRATED_THRESHOLD", "mentioned_names", "unknown_names"]
