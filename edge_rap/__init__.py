"""edge_rap: Remember, Retrieve and Generate (RAP) as an on-device personalised visual assistant."""

__version__ = "0.1.0"
