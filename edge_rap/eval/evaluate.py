"""`edge-rap eval retrieval`: recall and recognition accuracy on a folder of concepts, as in RAP's Table 4 and Fig. 6;
`eval localize`: the same concepts pasted into seeded composites, found and boxed."""

from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np

from edge_rap.config import Settings
from edge_rap.errors import DeviceError, EdgeRapError
from edge_rap.eval.dataset import ConceptFolder, image_files, loose_photos, not_opened, read_dataset
from edge_rap.folders import reachable
from edge_rap.memory.files import DATABASE
from edge_rap.memory.holders import holder
from edge_rap.memory.memory import distinct_views
from edge_rap.memory.store import Store, name_key, validate_name
from edge_rap.output import quoted
from edge_rap.perceive.images import read_image_file
from edge_rap.perceive.embed import ImageEmbedder
from edge_rap.scratch import process_folder
from edge_rap.types import Hit, Image
from edge_rap.wording import counted

if TYPE_CHECKING:
    from edge_rap.eval.composites import Composite, Layout

log = logging.getLogger(__name__)


def _growth_steps(total: int) -> list[int]:
    steps = sorted({0, total // 8, total // 4, total // 2, total})
    return [s for s in steps if s >= 0]


def evaluate_retrieval(settings: Settings, dataset: Path, distractors: Path | None = None, memory: Path | None = None,
                       progress: Callable[[Iterable], Iterable] = iter, embedder: ImageEmbedder | None = None,
                       references: int = 1) -> dict:
    from edge_rap.app import open_embedder, open_memory
    from edge_rap.retrieve import RetrievalPolicy, Retriever

    concepts = read_dataset(dataset, references)
    _require_queries(dataset, concepts, references)  # before a --memory is written: a retry would find it full
    extra = _distractor_files(distractors) if distractors is not None else []
    _refuse_a_held_memory(memory)
    embedder = embedder or open_embedder(settings, prepare=True)  # a memory of its own is written, as remember does
    written = {c.name for c in concepts} | {_distractor_name(k) for k in range(len(extra))}
    with _memory_folder(memory, written) as folder, closing(open_memory(settings, embedder, folder)) as mem:
        skipped = loose_photos(dataset)
        concepts = remember_references(mem, concepts, skipped, progress)
        names = {c.name for c in concepts}
        retriever = Retriever(mem.store, embedder, RetrievalPolicy(top_k=len(concepts) + 1))
        truths, vectors, all_scored, positive, negative = [], [], [], [], []
        for truth, path in progress([(c.name, q) for c in concepts for q in c.queries]):
            try:  # one photo decoded at a time, in the progress bar: 86 of 12 megapixels held 1 GB, 27 s unshown
                image = read_image_file(path).image
            except EdgeRapError as e:
                skipped.append(str(e))
                continue
            vectors.append(retriever.embed_query(image))
            all_scored.append(retriever.score(vectors[-1]))
            accepted = {h.concept.name for h in retriever.decide(image, all_scored[-1]).hits}
            truths.append(truth)
            positive.append(truth in accepted)
            negative.extend(name not in accepted for name in names if name != truth)
        if not truths:  # there were some (checked above): none could be read
            raise _no_readable_query(dataset, skipped)
        top1, top5 = _recall(truths, all_scored, len(concepts))
        report = {
            "embedder": embedder.space.model,
            "concepts": len(concepts),
            "concepts_queried": len(set(truths)),
            "references": references,
            "queries": len(truths),
            "top1": _rounded(top1),
            "top5": _rounded(top5),
            "recognition_positive": _rounded(float(np.mean(positive))),
            "recognition_negative": _rounded(float(np.mean(negative)) if negative else None),  # one concept: none
            "threshold": round(retriever.space_threshold, 4),
            "policy": {"z": retriever.policy.z, "margin": retriever.policy.margin},
            "skipped_images": skipped,
        }
        negative_rate = report["recognition_negative"]
        report["recognition_weighted"] = _rounded(None if negative_rate is None else
                                                  (report["recognition_positive"] + negative_rate) / 2)
        if distractors is not None:
            report["growth"] = _growth(mem, retriever, truths, vectors, distractors, extra, skipped, progress)
    return report


def evaluate_localize(settings: Settings, dataset: Path, per_frame: int = 4, seed: int = 0, memory: Path | None = None,
                      progress: Callable[[Iterable], Iterable] = iter, embedder: ImageEmbedder | None = None,
                      layout: "Layout | None" = None, references: int = 1) -> dict:
    """Composites of each concept's other photos (several per frame) with known boxes, onto another concept's
    photo (half the frames) or a texture or scene; recall, precision, IoU. Hits of the background's concept
    are not counted either way."""
    from edge_rap.app import open_detector, open_embedder, open_memory, retrieval_policy
    from edge_rap.eval.composites import Layout
    from edge_rap.retrieve import Retriever

    layout = layout or Layout()
    concepts = read_dataset(dataset, references)
    _require_queries(dataset, concepts, references)
    _refuse_a_held_memory(memory)
    embedder = embedder or open_embedder(settings, prepare=True)  # a memory of its own is written, as remember does
    detector = open_detector(settings, settings.profile.detector) if settings.profile.detector else None
    skipped = loose_photos(dataset)
    with _memory_folder(memory, {c.name for c in concepts}) as folder, \
            closing(open_memory(settings, embedder, folder)) as mem:
        concepts = remember_references(mem, concepts, skipped, progress)
        retriever = Retriever(mem.store, embedder, retrieval_policy(settings))  # as `recognize`, whatever per_frame is
        frames = concept_backgrounds = most = truths = predictions = 0
        ious: list[float] = []
        # (each frame built as the bar comes to it: its photos' reading was a long wait with nothing shown)
        for frame in progress(localize_frames(concepts, per_frame, seed, skipped, layout)):
            image = Image(frame.pixels, "composite")  # placed as `edge-rap recognize` places it, the profile's
            regions = detector.detect(image) if detector is not None else None  # detector too (no categories here)
            result = retriever.recognize(image, regions=regions)
            counted, overlaps = score_frame(frame, result.hits)
            frames += 1
            concept_backgrounds += frame.background is not None
            most = max(most, len(frame.placed))
            truths += len(frame.placed)
            predictions += counted
            ious += overlaps
        if not frames:
            raise _no_readable_query(dataset, skipped)
    return {
        "embedder": embedder.space.model,
        "detector": settings.profile.detector or None,
        "frames": frames,
        "concept_backgrounds": concept_backgrounds,
        "per_frame": most,  # as many as asked, or as there are concepts
        "references": references,
        "frame_size": list(layout.frame),
        "widths": [layout.min_width, layout.max_width],
        "placed": truths,
        # (None where nothing is behind a figure: nothing pasted, no concept said to be in a frame, none found)
        "recall": _rounded(len(ious) / truths if truths else None),
        "precision": _rounded(len(ious) / predictions if predictions else None),
        "mean_iou": _rounded(float(np.mean(ious)) if ious else None),
        "iou50": _rounded(float(np.mean(np.asarray(ious) >= 0.5)) if ious else None),
        "seed": seed,
        "skipped_images": skipped,
    }


@contextmanager
def _memory_folder(memory: Path | None, names: set[str]) -> Iterator[Path]:
    """Where the dataset is remembered: a temporary folder, or --memory. A --memory that was new or empty is
    emptied again when the run fails or is interrupted (Ctrl-C): half a dataset left in it would have the
    corrected run refused as a memory that already holds concepts. One that held a memory is left as it is, and
    so is one another process opened or remembered into meanwhile (a concept not among `names`, those the run
    may remember)."""
    if memory is None:
        with tempfile.TemporaryDirectory(prefix="eval-", dir=process_folder()) as tmp:
            yield Path(tmp)
        return
    existed = memory.exists()
    try:
        ours = not existed or (memory.is_dir() and not any(memory.iterdir()))
    except OSError:  # unlistable: opening it says why
        ours = False
    try:
        yield memory
    except BaseException:
        if ours and _this_runs_alone(memory, names):
            _remove_written(memory, existed)
        raise


def _this_runs_alone(memory: Path, names: set[str]) -> bool:
    """Whether what `memory` holds is this run's alone: no other process has it open (`serve`, `run` started on
    it meanwhile) and every concept is named in `names`; False when that cannot be read."""
    if (pid := holder(memory / DATABASE)) is not None:
        log.warning("eval: %s left as it is: another process (pid %d) has it open", memory, pid)
        return False
    keys = {name_key(n) for n in names}
    try:
        with closing(Store(memory, readonly=True)) as store:
            others = [c.name for c in store.concepts() if name_key(c.name) not in keys]
    except (EdgeRapError, OSError) as e:
        log.warning("eval: %s left as it is (its memory could not be read: %s)", memory, e)
        return False
    if others:
        log.warning("eval: %s left as it is: another process remembered %s in it meanwhile", memory,
                    ", ".join(f"<{n}>" for n in others))
    return not others


def _remove_written(memory: Path, keep_folder: bool) -> None:
    """Remove what an unfinished run wrote into a --memory that was new (the folder) or empty (its entries)."""
    if not keep_folder:
        shutil.rmtree(memory, ignore_errors=True)
        return
    for entry in memory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _distractor_name(k: int) -> str:
    return f"distractor-{k:05d}"


def _require_queries(dataset: Path, concepts: list[ConceptFolder], references: int) -> None:
    """Some concept must have a photo left to ask about (none given: the dataset had none that could be read)."""
    if not any(c.queries for c in concepts):
        raise EdgeRapError(f"{dataset}: no query images (each concept folder needs {references + 1}+ images)")


def _no_readable_query(dataset: Path, skipped: list[str]) -> EdgeRapError:
    """The error of a dataset whose queries could none be read (a phone's 200-megapixel photos), with the last
    reason: not that it has none, which sends a person to count their files."""
    reason = f" ({skipped[-1]})" if skipped else ""
    return EdgeRapError(f"{dataset}: no query image of a remembered concept could be read{reason}")


def _refuse_held(count: int) -> None:
    if count:
        raise EdgeRapError(f"the memory already holds {counted(count, 'concept')}: eval remembers the dataset's "
                           "concepts into --memory, so give it a new or empty folder (or leave --memory out)")


def _refuse_a_held_memory(memory: Path | None) -> None:
    """A --memory that holds concepts, refused before the embedder opens: a missing default one is exported first
    (about a minute), and the run was then refused all the same. `remember_references` checks again, on the
    memory it writes."""
    if memory is None:
        return
    try:
        written = (memory / DATABASE).is_file()
    except OSError:  # a folder this account may not search: opening it says why, in one line
        written = True
    if written:
        with closing(Store(memory, readonly=True)) as store:
            _refuse_held(len(store.concepts()))


def remember_references(mem, concepts: list[ConceptFolder], skipped: list[str],
                        progress: Callable[[Iterable], Iterable] = iter) -> list[ConceptFolder]:
    """Remember each concept's reference photos. A reference the memory refuses (unreadable, blank) is said in
    `skipped` and the concept is remembered from its others; a concept left with none, or whose folder name the
    memory refuses (too long, a second folder of the same name: in any case or Unicode spelling, as the memory
    compares names; a reference photo that is an earlier folder's too: one photo is one concept's; the first
    keeps it), is left out with its queries and said in `skipped`, so that one bad
    folder does not void a whole evaluation. A memory that already holds anything, or a failed write, ends the
    run before anything is written: its concepts would compete with the dataset's (a wrong score) and the
    dataset's would stay in it."""
    _refuse_held(len(mem.concepts()))
    kept, seen = [], {}  # each name as the memory compares names (name_key) -> its folder's
    left_out = []  # why each concept was: what an evaluation of none says (not the pipes, links... before them)
    for c in progress(concepts):
        skipped += c.unread
        if not c.references:
            left_out.append(f"no photo in the folder of {quoted(c.name)} (left out)")
            skipped.append(left_out[-1])
            continue
        try:
            if (other := seen.get(name_key(c.name))) is not None:
                raise EdgeRapError(f"another folder is also named {quoted(other)}")
            validate_name(c.name)
            prepared, refused = _prepared(mem, c.references)
            passed: list[str] = []
            if not prepared:
                c, prepared, passed = _in_their_place(mem, c, refused)
            mem.remember_prepared(c.name, distinct_views(prepared, c.name), "", "")
        except DeviceError:
            raise  # the memory cannot be written: no later folder could be either
        except EdgeRapError as e:  # this folder's: its photo is another folder's reference too, say
            queries = counted(len(c.queries), "query", "queries")
            left_out.append(f"{e} (the reference of {quoted(c.name)}: left out with its {queries})")
            skipped.append(left_out[-1])
            continue
        skipped += passed if passed else [f"{e} (a reference of {quoted(c.name)}: remembered from its other "
                                          f"{len(prepared)})" for e in refused]
        seen[name_key(c.name)] = c.name
        kept.append(c)
    if not kept:
        raise EdgeRapError("no concept's reference photo could be remembered: " + "; ".join(left_out[:3]))
    return kept


def _in_their_place(mem, c: ConceptFolder, refused: list[EdgeRapError]) -> tuple[ConceptFolder, list, list[str]]:
    """Where none of a concept's references could be read (an empty `0empty.jpg`, sorted first, a photo cut short),
    the first of its queries the memory takes, remembered as its reference; the photos passed over, a line each in
    skipped_images. The concept was left out with all its photos. A reference read but refused (a lens cap, another
    concept's photo) still leaves it out; so does one of none that can be read (the last refusal raised)."""
    if any(_reads(photo) for photo in c.references):
        raise refused[-1]
    for k, photo in enumerate(c.queries):
        try:
            view = mem.prepare(photo)
        except EdgeRapError as e:
            refused.append(e)
            continue
        return (replace(c, references=[photo], queries=c.queries[k + 1:]), [view],
                [f"{e} (passed over: the reference of {quoted(c.name)} is {photo.name})" for e in refused])
    raise refused[-1]


def _reads(photo: Path) -> bool:
    """Whether the photo reads (its memory's refusal is of what it shows, not of the file)."""
    try:
        read_image_file(photo)
    except EdgeRapError:
        return False
    return True


def _prepared(mem, photos: list[Path]) -> tuple[list, list[EdgeRapError]]:
    """The photos the memory can remember (prepared), and why it refused the others."""
    prepared, refused = [], []
    for photo in photos:
        try:
            prepared.append(mem.prepare(photo))
        except EdgeRapError as e:
            refused.append(e)
    return prepared, refused


@dataclass(frozen=True)
class Frames:
    """`localize_frames`' frames, each made as it is asked for, and how many there are to be (`len`: the progress
    bar's total, each photo taken as readable: one that is not may leave fewer)."""

    made: Iterator["Composite"]
    planned: int

    def __iter__(self) -> Iterator["Composite"]:
        return self.made

    def __len__(self) -> int:
        return self.planned


def localize_frames(concepts: list[ConceptFolder], per_frame: int, seed: int,
                    skipped: list[str], layout: "Layout | None" = None) -> Frames:
    """The seeded frames, each made as it is asked for: every query pasted once, `per_frame` concepts at a time,
    onto another concept's photo (half the frames) or a texture or scene. An unreadable photo is said in `skipped`
    and left out."""
    rng = np.random.default_rng(seed)
    items = [(c.name, q) for c in concepts for q in c.queries]
    pending = [items[k] for k in rng.permutation(len(items))]
    planned, left = 0, pending
    while left:  # (the frames' grouping, each photo taken as readable)
        left = _next_group(left, per_frame, lambda path: path)[1]
        planned += 1
    return Frames(_made_frames(items, pending, per_frame, seed, rng, skipped, layout), planned)


def _next_group(pending: list[tuple[str, Path]], per_frame: int, photo: Callable[[Path], object | None]
                ) -> tuple[list[tuple[str, object]], list[tuple[str, Path]]]:
    """The next frame's photos as `photo` gives them (None: unreadable, left out), `per_frame` concepts at most in
    `pending`'s order, and those left pending: one instance of a concept per frame, a second waits for the next.
    Empty where all it came to were unreadable."""
    group, names, later = [], set(), []
    for name, path in pending:
        if len(group) == per_frame or name in names:
            later.append((name, path))
        elif (pixels := photo(path)) is not None:
            names.add(name)
            group.append((name, pixels))
    return group, later


def _made_frames(items: list[tuple[str, Path]], pending: list[tuple[str, Path]], per_frame: int, seed: int,
                 rng: np.random.Generator, skipped: list[str], layout: "Layout | None") -> Iterator["Composite"]:
    """`localize_frames`' frames, made one at a time: each frame's photos read as it is made, and let go before it
    is handed out (they were held while it was recognised: five 12-megapixel photos are 180 MB)."""
    from edge_rap.eval.composites import Layout, backgrounds, compose

    layout = layout or Layout()
    unreadable: set[Path] = set()

    def pixels(path: Path) -> np.ndarray | None:
        if path in unreadable:
            return None
        try:
            return read_image_file(path).image.pixels
        except EdgeRapError as e:
            unreadable.add(path)
            skipped.append(str(e))
            return None

    scenes = backgrounds(8, seed)
    while pending:
        group, pending = _next_group(pending, per_frame, pixels)
        names = {name for name, _ in group}
        others = [(name, path) for name, path in items if name not in names]
        background, background_name = None, None
        if others and rng.random() < 0.5:  # half the frames: another concept's photo as the background
            background_name, path = others[int(rng.integers(len(others)))]
            background = pixels(path)
        if not group:
            continue
        if background is not None:
            frame = compose(group, background, rng, layout, background_name)
        else:  # the others (or an unreadable photo): a generated texture or a sample photo of a scene
            frame = compose(group, scenes[int(rng.integers(len(scenes)))], rng, layout)
        group = background = None
        yield frame


def score_frame(frame: "Composite", hits: list[Hit]) -> tuple[int, list[float]]:
    """How many hits count (the background concept's do not) and, for each pasted concept found, the IoU of
    its box with the pasted photo's."""
    from edge_rap.perceive.boxes import iou

    truth = {p.name: p.box for p in frame.placed}
    counted = [h for h in hits if h.concept.name != frame.background]
    return len(counted), [iou(h.box, truth[h.concept.name]) for h in counted if h.concept.name in truth]


def format_localize(report: dict) -> str:
    width, height = report["frame_size"]
    return (f"embedder {report['embedder']}{_per_concept(report)}: {counted(report['frames'], 'frame')} of "
            f"{width}x{height} ({report['concept_backgrounds']} on another concept's photo), "
            f"{counted(report['placed'], 'pasted concept')} ({report['per_frame']} per frame, "
            f"{report['widths'][0]:.0%}-{report['widths'][1]:.0%} of the width)\nrecall "
            f"{_figure(report['recall'], 'nothing pasted')}   "
            f"precision {_figure(report['precision'], 'no concept said to be in any frame')}   "
            f"mean IoU {_figure(report['mean_iou'], 'none found')}   "
            f"IoU>=0.5 for {_figure(report['iou50'], 'none found')} of those found"
            + "".join(f"\nskipped: {s}" for s in report["skipped_images"]))


def _per_concept(report: dict) -> str:
    n = report["references"]
    return f" (the first {n} photos of each concept remembered)" if n > 1 else ""


def _queried(report: dict) -> str:
    """Concepts without queries of their own only compete: say how many were asked about."""
    n = report["concepts_queried"]
    return f" ({n} with queries, the others only compete)" if n < report["concepts"] else ""


def _distractor_files(distractors: Path) -> list[Path]:
    """The distractor photos, listed before anything is remembered: a --memory filled and then refused would
    refuse the corrected run too."""
    if not reachable(distractors, Path.is_dir):  # a mistyped path said as --dataset's is, not as a folder of no photos
        raise EdgeRapError(f"{distractors}: not a folder")
    files = image_files(distractors)
    if not files:
        raise EdgeRapError(f"{distractors}: no distractor images")
    return files


def _growth(mem, retriever, truths: list[str], vectors, distractors: Path, files: list[Path], skipped: list[str],
            progress) -> list[dict]:
    """Recall@1/@5 as distractor concepts are added (the curve of RAP's Fig. 6). A distractor the memory
    refuses (unreadable, blank) is said in `skipped` and not added; when none could be, the curve would be a
    flat line of no distractors, so that is an error."""
    curve, added, refused = [], 0, []
    base = len(mem.concepts())
    for step in _growth_steps(len(files)):
        for k in progress(range(added, step)):
            try:
                mem.remember(_distractor_name(k), [files[k]])
            except EdgeRapError as e:
                refused.append(str(e))
        added = step
        held = len(mem.concepts())
        top1, top5 = _recall(truths, [retriever.score(v) for v in vectors], held)
        curve.append({"concepts": held, "distractors": held - base, "recall@1": _rounded(top1),
                      "recall@5": _rounded(top5)})
    if len(refused) == len(files):
        raise EdgeRapError(f"{distractors}: no distractor image could be remembered ({refused[-1]})")
    skipped += not_opened(distractors) + [f"{e} (a distractor: not added)" for e in refused]
    return curve


def _recall(truths: list[str], scored: list[list], concepts: int) -> tuple[float | None, float | None]:
    """Top-1 and top-5 recall: how often the true concept (of each query, `truths`) ranks first, or among the first
    five. None where no more than that many `concepts` compete: every one is among them, and a 1.0 would say
    nothing."""
    ranked = [[c.name for c, _ in s] for s in scored]

    def at(k: int) -> float | None:
        return float(np.mean([t in r[:k] for t, r in zip(truths, ranked)])) if concepts > k else None

    return at(1), at(5)


def _rounded(figure: float | None) -> float | None:
    """A figure as the report gives it: 4 decimals, or None (null in --json) where nothing is behind it."""
    return None if figure is None else round(figure, 4)


def _figure(value: float | None, missing: str) -> str:
    """A figure as the report's text gives it; `missing`: why there is none (null in --json)."""
    return f"{value:.3f}" if value is not None else f"none ({missing})"


def format_report(report: dict) -> str:
    lines = [
        f"embedder {report['embedder']}{_per_concept(report)}: {counted(report['concepts'], 'concept')}"
        f"{_queried(report)}, {counted(report['queries'], 'query', 'queries')}",
        f"top-1 recall {_figure(report['top1'], 'one concept: nothing to rank')}   "
        f"top-5 recall {_figure(report['top5'], '5 concepts or fewer: each is among the first five')}",
        f"recognition: positive {report['recognition_positive']:.3f}  "
        f"negative {_figure(report['recognition_negative'], 'no negatives: one concept')}  "
        f"weighted {_figure(report['recognition_weighted'], 'no negatives')}",
    ]
    for point in report.get("growth", []):
        lines.append(f"  {point['concepts']:5d} concepts: recall@1 {_figure(point['recall@1'], 'one concept')}  "
                     f"recall@5 {_figure(point['recall@5'], '5 concepts or fewer')}")
    for s in report["skipped_images"]:
        lines.append(f"skipped: {s}")
    return "\n".join(lines)
