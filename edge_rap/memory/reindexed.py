"""What a reindex did: the views it re-embedded, the stored photos it could not read (one missing or damaged file
must not stop the whole household's reindex) and the concepts those leave without a photo to be recognised by."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field


def add_a_photo(name: str) -> str:
    """The command that gives a concept another photo, as the user types it."""
    return f"edge-rap add-views {shlex.quote(name)} PHOTO"


@dataclass(frozen=True)
class UnreadablePhoto:
    """A concept's stored photo that cannot be read (deleted by hand, a bad sector, truncated)."""

    concept: str
    photo: str  # the file under the memory's images/
    problem: str  # why it cannot be read, as the photo's reader says it (it names the file)

    def line(self) -> str:
        return (f"{self.problem} (a photo of <{self.concept}>): not re-embedded; restore the file from a backup, or "
                f"give <{self.concept}> another photo: {add_a_photo(self.concept)}")


@dataclass(frozen=True)
class Reindexed:
    """`views`: how many photo views were re-embedded, `faces` how many people's faces (apart: `concepts` counts the
    photos, and a reindex of 5 said 6 where one showed a person); `unrecognisable`: concepts left with no vectors in
    the embedder's space (every photo of theirs unreadable), kept with their name, description and events until they
    get one."""

    views: int
    unreadable: list[UnreadablePhoto] = field(default_factory=list)
    unrecognisable: list[str] = field(default_factory=list)
    faces: int = 0

    def lines(self) -> list[str]:
        """What the user must know beside the count, one line each: every unreadable photo, then every concept
        that cannot be recognised until it has a readable one."""
        return [p.line() for p in self.unreadable] + [
            f"<{name}> cannot be recognised until it has a readable photo: {add_a_photo(name)}"
            for name in self.unrecognisable]

    def to_json(self) -> dict:
        return {"views": self.views, "faces": self.faces, "unreadable": [asdict(p) for p in self.unreadable],
                "unrecognisable": self.unrecognisable}
