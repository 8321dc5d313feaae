"""Who is in view of one camera: per-frame hits voted into arrivals and departures.

Retrieval already names at most one box per concept per frame, so a track is a concept's presence in one
camera: association is by identity, which is exact here, where a box tracker (norfair, ByteTrack) would
only add motion guesses between frames seconds apart. As Frigate decides a true positive, a concept
arrives when it was found in `confirm` of the last `window` recognised frames (one miss or one stray hit
does not decide), or on one frame where it clears its threshold by `sure_margin` (retrieval's own margin
of a clear decision: waiting for a second frame costs half a second here); it leaves when it has not been
seen for `leave_after_s` of source time and was missed on `confirm` recognised frames in a row (a second look
decides a leaving as it does an arrival: where frames are recognised seconds apart, several cameras or a person
remembered on a slow board, one miss was already `leave_after_s` long, and every miss a leaving and a new
arrival). A return within `cooldown_s` of its last sighting is logged but not announced again.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

from edge_rap.types import Box, Hit


@dataclass(frozen=True)
class VoteSettings:
    confirm: int = 2
    window: int = 3
    sure_margin: float = 0.05
    leave_after_s: float = 1.5
    cooldown_s: float = 30.0


@dataclass
class Change:
    """A decision about one concept: arrived (with where, how sure, and whether to announce it) or left."""

    kind: str  # "arrived" | "left"
    concept_id: int
    name: str
    time_s: float
    box: Box | None = None
    score: float | None = None
    announce: bool = True


@dataclass
class _Track:
    name: str
    votes: deque = field(default_factory=deque)  # score or None, per recognised frame, newest last
    box: Box | None = None
    present: bool = False
    last_seen: float = -1e9
    seen_before: float = -1e9  # last sighting of its previous visit, for the cooldown

    @property
    def misses(self) -> int:
        """The recognised frames in a row, newest last, that did not find it."""
        found = [k for k, score in enumerate(self.votes) if score is not None]
        return len(self.votes) - 1 - found[-1] if found else len(self.votes)


class Presence:
    """Turns one camera's recognitions into arrivals and departures."""

    def __init__(self, settings: VoteSettings = VoteSettings()):
        self.settings = settings
        self._tracks: dict[int, _Track] = {}
        self._last_hits: dict[int, Hit] = {}
        self._sure: set[int] = set()

    @property
    def present(self) -> list[str]:
        return [t.name for t in self._tracks.values() if t.present]

    @property
    def undecided(self) -> bool:
        """A concept seen on the last recognised frame but not yet voted in, or present but missed on fewer
        recognised frames than decide its leaving: the next frame must be recognised to decide it, even if nothing
        moves (a thing that came in one cut and then stood still would otherwise wait for a re-check that compares
        the scene with itself, and one missed once would stay for good)."""
        return any((0 < t.misses < self._looks) if t.present else t.votes[-1] is not None
                   for t in self._tracks.values() if t.votes)

    @property
    def _looks(self) -> int:
        """Recognised frames in a row that must miss a present concept before it may leave."""
        return min(self.settings.confirm, self.settings.window)

    def update(self, time_s: float, hits: list[Hit] | None) -> list[Change]:
        """One frame's decisions. `hits` are its recognised concepts, or None for a frame the gate let pass
        unrecognised: the scene did not change, so what was seen last is still there."""
        if hits is not None:
            self._vote(time_s, hits)
        for concept_id in self._last_hits:
            self._tracks[concept_id].last_seen = time_s
        return self._decide(time_s)

    def end(self, time_s: float) -> list[Change]:
        """Watching stops (shutdown, the source ended): every concept present leaves now, so the event log never
        holds a visit that lasts after the camera stopped looking ("is Mochi home?" days later)."""
        changes = [Change("left", concept_id, track.name, time_s)
                   for concept_id, track in self._tracks.items() if track.present]
        self._tracks.clear()
        self._last_hits.clear()
        self._sure.clear()
        return changes

    def interrupt(self, time_s: float) -> list[Change]:
        """The camera went blind (a stream dropped; it reconnects): every concept present leaves now, and a
        return within the cooldown is still not announced again."""
        changes = [self._leave(concept_id, track, time_s) for concept_id, track in self._tracks.items()
                   if track.present]
        for track in self._tracks.values():  # a vote from before the drop does not count with one after it
            track.votes.clear()
        self._last_hits.clear()
        self._sure.clear()
        return changes

    def forget(self, keep: set[int], time_s: float) -> list[Change]:
        """Drop the tracks of concepts no longer remembered (forgotten by another process); those present leave
        (the stream that showed their arrival must show their end: the log has none of them, forget removed it)."""
        changes = []
        for concept_id in [i for i in self._tracks if i not in keep]:
            track = self._tracks.pop(concept_id)
            self._last_hits.pop(concept_id, None)
            self._sure.discard(concept_id)
            if track.present:
                changes.append(Change("left", concept_id, track.name, time_s))
        return changes

    def rename(self, names: dict[int, str]) -> None:
        """Take the names the concepts have now (renamed by another process): one that leaves before it is
        recognised again must leave under the name its arrival now has in the log."""
        for concept_id, track in self._tracks.items():
            track.name = names.get(concept_id, track.name)

    def _vote(self, time_s: float, hits: list[Hit]) -> None:
        self._last_hits = {h.concept.id: h for h in hits if h.accepted}
        self._sure = {h.concept.id for h in hits if h.score >= h.threshold + self.settings.sure_margin}
        for concept_id, hit in self._last_hits.items():
            track = self._tracks.setdefault(concept_id, _Track(hit.concept.name))
            track.name, track.box = hit.concept.name, hit.box
        for concept_id, track in self._tracks.items():
            hit = self._last_hits.get(concept_id)
            track.votes.append(None if hit is None else hit.score)
            while len(track.votes) > self.settings.window:
                track.votes.popleft()

    def _decide(self, time_s: float) -> list[Change]:
        changes = []
        for concept_id, track in list(self._tracks.items()):
            scores = [s for s in track.votes if s is not None]
            voted = len(scores) >= self.settings.confirm or concept_id in self._sure
            if not track.present and voted and concept_id in self._last_hits:
                track.present = True
                quiet = track.last_seen - track.seen_before < self.settings.cooldown_s
                changes.append(Change("arrived", concept_id, track.name, time_s, track.box,
                                      statistics.median(scores), announce=not quiet))
            elif (track.present and track.misses >= self._looks
                  and time_s - track.last_seen >= self.settings.leave_after_s):
                changes.append(self._leave(concept_id, track, time_s))
            elif not track.present and not scores and time_s - track.seen_before >= self.settings.cooldown_s:
                del self._tracks[concept_id]  # voted out, or gone longer than the cooldown: nothing to keep
        return changes

    @staticmethod
    def _leave(concept_id: int, track: _Track, time_s: float) -> Change:
        track.present = False
        track.seen_before = track.last_seen
        track.votes.clear()
        return Change("left", concept_id, track.name, time_s)
