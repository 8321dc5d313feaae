"""The one exception type for errors a user can cause; the CLI prints its message on one line."""


class EdgeRapError(Exception):
    """A problem with the user's input or environment, explained in one line (no traceback)."""
