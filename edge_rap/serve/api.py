"""The routes under /api: concepts (list, add, read, change, forget, photos), recognize, ask, events, backup (and
its short-lived link), stats.

Every write goes through the household's memory API, exactly as the CLI's commands do (atomic, visible to the
CLI at once). Writes are serialised within the process (a name is checked and taken under one lock), and the
model work, uploads' reading and decoding included, runs one request at a time: a running daemon loses a bounded number
of frames, and the memory the requests take is bounded however many come at once. Cards' thumbnails are made one at a
time beside it, under a lock of their own. The line of requests waiting for any of these is bounded too
(serve/line.py)."""

from __future__ import annotations

import contextvars
import json
import logging
import queue
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path
from typing import Annotated, Callable, ContextManager, Iterator, TypeVar, get_origin
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.background import BackgroundTask

from edge_rap.daemon.events import SNAPSHOT_NAME, parse_since
from edge_rap.errors import DeviceError, EdgeRapError
from edge_rap.generate.prompt import MAX_QUESTION, check_question
from edge_rap.household import Household
from edge_rap.perceive.faces import FaceChoiceError
from edge_rap.perceive.images import MAX_SIDE, decode_image
from edge_rap.perceive.location import without_location
from edge_rap.memory.memory import MAX_DESCRIPTION, clean_text
from edge_rap.memory.store import NameTakenError, UnknownConceptError, new_name, validate_name
from edge_rap.output import quoted
from edge_rap.serve import schemas
from edge_rap.serve.backup import DownloadLinks, OneDownload, Reader
from edge_rap.serve.drain import InFlight
from edge_rap.serve.line import Line
from edge_rap.serve.log_budget import LogBudget
from edge_rap.serve.problems import ApiError, fieldless, for_client, not_json
from edge_rap.serve.responses import TextJSONResponse, sse_event
from edge_rap.serve.routes import known_query, url_first
from edge_rap.serve.thumbnails import Thumbnails
from edge_rap.serve.uploads import Photo, as_files, relabel, sniff, sniff_file
from edge_rap.serve.whole_file import WholeFile
from edge_rap.speech.reply import as_answer, reply
from edge_rap.types import Box, Concept, Event, Image, Recognition

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """What one request may carry. The body limits themselves are enforced before routing (guard.BodyLimit)."""

    body_bytes: int = 64 * 2**20
    fields_bytes: int = 64 * 2**10  # a body without photos (JSON, a urlencoded form): a few fields
    photos: int = 16
    question_chars: int = MAX_QUESTION
    waiting: int = 16  # requests in line for the one-at-a-time work (serve/line.py): one client's connections


#: The error statuses any route may answer: 400 a request it cannot read, 413 a body over its limit (both before
#: routing), 421 a host name it does not answer to, 422 a query parameter it does not take, 503 the device busy
#: (Retry-After) or its memory gone; and, but on the public routes (guard.is_public), the token's 401 and 429.
EVERY, TOKEN = (400, 413, 421, 422, 503), (401, 429)
#: Those a route answers besides (by its function's name): 404 a concept, photo, event, memory or download not there,
#: 409 a name taken, 415 a body or photo of another type; 507 is each route's own. The published schema lists for
#: each route these alone (app._schema): every status on every route told a client of a 409 from /api/health.
ANSWERS: dict[str, tuple[int, ...]] = {
    "health": (), "list_concepts": (), "add_concept": (409, 415), "get_concept": (404,),
    "change_concept": (404, 409, 415), "forget_concept": (404,), "add_photos": (404, 415), "get_photo": (404,),
    "recognize": (415,), "ask": (415,), "events": (404,), "snapshot": (404,), "backup": (404,),
    "backup_link": (404,), "download": (404,), "daemon_stats": ()}
#: Every one of them, with its model, for FastAPI to publish (app._schema keeps each route's).
ERRORS = {code: {"model": schemas.Error} for code in sorted({*EVERY, *TOKEN, *chain(*ANSWERS.values())})}
#: A route that writes the memory (an upload the form's parser spools to the temporary folder first): a full disk.
FULL = {507: {"model": schemas.Error, "description": "the disk is full; nothing was changed"}}
#: A route that takes an upload and changes nothing (READ_ONLY_ROUTES): "nothing was changed" would be no news.
UPLOAD_FULL = {507: {"model": schemas.Error, "description": "the device's temporary folder, where uploads are "
                     "written first, is full"}}
#: A route that reads the event log: where none is there yet, the one it starts needs room.
LOG_FULL = {507: {"model": schemas.Error, "description": "the disk is full: the event log, not made yet, cannot be "
                  "started"}}
#: /api/ask: its upload, or (asked without a photo: where is Bo?) the sightings' event log.
ASK_FULL = {507: {"model": schemas.Error, "description": f"{UPLOAD_FULL[507]['description']}; or, asked without a "
                  f"photo, {LOG_FULL[507]['description']}"}}


def _when(field: str, text: str | None, now: float) -> float | None:
    """/api/events' `since` or `until` before `now`, one for both; an empty one is one not given, as a form leaves a
    field."""
    try:
        return parse_since(text, now) if text else None
    except EdgeRapError:
        raise ApiError(f"{field} {quoted(text)}: use 30s, 10m, 2h, 1d, 1w or an ISO date-time", 422) from None


def _name(text: str, rule: Callable[[str], str] = validate_name) -> str:
    """A concept name by the CLI's rules (`new_name` for one a concept is to take), or 422."""
    try:
        return rule(text)
    except EdgeRapError as e:
        raise ApiError(str(e), 422) from None


def _one_line(value: str | None, what: str, limit: int) -> None:
    """A description or category measured as the memory stores it, or 422: the line breaks a browser sends as CRLF
    and the runs of spaces count as the one space they become."""
    if value is not None:
        try:
            clean_text(value, what, limit)
        except EdgeRapError as e:
            raise ApiError(str(e), 422) from None


def _box(text: str | None) -> Box | None:
    if not text:
        return None
    try:
        return Box.parse(text)
    except EdgeRapError as e:
        raise ApiError(str(e), 422) from None


def _counted(uploads: list[UploadFile], limits: Limits) -> None:
    if not uploads:
        raise ApiError("at least one photo is needed", 422)
    if len(uploads) > limits.photos:
        raise ApiError(f"{len(uploads)} photos; the limit is {limits.photos} a request", 413)


def _photos(uploads: list[UploadFile]) -> list[Photo]:
    """The uploads read, in their request's turn (its lock held): until then they stay where the form's parser
    spooled them, on disk past 1 MiB. Read before it, sixteen requests of 60 MiB waiting for the device's
    one-at-a-time work took 1 GB of its memory at once."""
    return [sniff(u.file.read(), _label(k, u.filename)) for k, u in enumerate(uploads)]


def _decoded(upload: UploadFile, label: str) -> Image:
    """One upload read (as `_photos`, in its request's turn) and decoded."""
    photo = sniff(upload.file.read(), label)
    return decode_image(photo.data, photo.label)


def _plain_name(filename: str | None) -> str | None:
    """The file name a client sent with an upload, when it is short and printable (it goes into answers)."""
    name = Path(filename or "").name
    return name if name and len(name) <= 64 and all(c.isprintable() for c in name) else None


def _label(k: int, filename: str | None) -> str:
    """How one of several uploads is named in messages: its place, and its file name when plain."""
    name = _plain_name(filename)
    return f"photo {k + 1}" + (f" ({name})" if name else "")


#: The media types a form is sent in; the routes that take form fields refuse any other.
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _media(request: Request) -> str:
    """The body's media type, without its parameters ("" where none is said)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def _json_object(request: Request, body: bytes) -> object:
    """The body parsed as JSON; a key given twice in one object is refused (422), as a form field sent twice is:
    Python's parser keeps the last and drops the other without a word."""
    def once(pairs: list[tuple[str, object]]) -> dict:
        taken = dict(pairs)
        if len(taken) < len(pairs):  # (counted once: a 64 KiB body holds thousands of keys)
            key, sent = next((key, sent) for key, sent in Counter(key for key, _ in pairs).items() if sent > 1)
            raise ApiError(f"{key}: sent {sent} times; {request.method} {request.url.path} takes one", 422)
        return taken

    return json.loads(body, object_pairs_hook=once)


async def _json_body(request: Request) -> None:
    """Refuse a body that is not JSON, in words: a form (`curl -d name=bo`, which sends one) was answered
    "request: Input should be a valid dictionary or object to extract fields from". A body without a media type is
    read as JSON, as POST /api/ask reads one (Python's `requests.patch(url, data=json.dumps(...))` sends none): the
    router's `strict_content_type=False`, harmless where the routes that read JSON ask for the bearer token (no
    browser sends that header across sites without asking first)."""
    media = _media(request)
    if media and not _is_json(media):
        raise ApiError(f"{request.method} {request.url.path} takes a JSON object (application/json, as `curl --json "
                       f"'{{\"description\": \"...\"}}'` sends it), not {media}", 415)
    try:  # what FastAPI parsed, read again for a key given twice (no body, or none of JSON: FastAPI says so)
        _json_object(request, await request.body())
    except (ValueError, RecursionError):
        pass


JSON = [Depends(_json_body)]


async def _form_body(request: Request) -> None:
    """Refuse a body that is not a form, in words: a JSON body read as a form holds no field, and the client
    that sent {"question": ...} was told that ask needs a question. Refuse a field the route does not take
    (422, as the JSON routes do): a misspelt `descripton` was dropped without a word, the concept kept none; and
    one sent twice where the route takes one."""
    media = _media(request)
    if media and media not in FORM_TYPES:
        raise ApiError(f"{request.method} {request.url.path} takes form fields (multipart/form-data, as "
                       f"`curl -F field=value` sends them), not {media}", 415)
    fields = request.scope["route"].dependant.body_params
    taken = [field.alias for field in fields]
    form = await request.form()  # the form FastAPI has already read
    unknown = sorted(set(form.keys()) - set(taken))
    if unknown:
        raise ApiError(f"{unknown[0]}: not a field of {request.method} {request.url.path} (it takes "
                       f"{', '.join(taken)})", 422)
    for field in fields:  # one of a field that takes one was kept, the others dropped: two photos, one answer
        if get_origin(field.field_info.annotation) is not list and (sent := len(form.getlist(field.alias))) > 1:
            raise ApiError(f"{field.alias}: sent {sent} times; {request.method} {request.url.path} takes one", 422)


FORM = [Depends(_form_body)]


async def _json_question(request: Request) -> str | None:
    """POST /api/ask's question sent as JSON, `{"question": "..."}` (`curl --json`), as a client that sends no photo
    may well send it, or as a body without a media type (Python's `requests.post(url, data=json.dumps(...))`: no
    form can be read from it, and it was answered "ask needs a question"); None for a form, whose fields are checked
    as every form route's are. A photo goes in a form."""
    media = _media(request)
    if not _is_json(media) and (media or not await request.body()):
        await _form_body(request)
        return None
    raw = await request.body()
    try:  # an empty body is `{}`: refused naming the field, as PATCH refuses both
        body = _json_object(request, raw) if raw else {}
    except (ValueError, RecursionError) as e:  # not JSON, not UTF-8, or nested past what Python parses
        raise ApiError(not_json(e), 400) from None
    try:
        return schemas.Question.model_validate(body).question
    except ValidationError:
        raise ApiError('POST /api/ask takes {"question": "..."} as JSON; a photo, with or without a question, as '
                       "form fields (multipart/form-data, as `curl -F photo=@frame.jpg` sends it)", 422) from None


#: POST /api/ask's JSON body in the published schema, beside its form (the fuzz test sends both).
QUESTION_BODY = {"requestBody": {"content": {"application/json": {"schema": schemas.Question.model_json_schema()}}}}


def _face_choice(error: FaceChoiceError, paths: list[Path]) -> dict:
    """The faces a person's photo shows (its place among the uploads, from 1, and their boxes in its upright
    pixels), so that a client can let the user point at one and send it again with that box."""
    where = [k for k, p in enumerate(paths, 1) if str(p) == error.source]
    if not error.boxes or not where:
        return {}
    return {"faces": {"photo": where[0], "boxes": [b.as_list() for b in error.boxes]}}


def build_router(home: Household, limits: Limits, in_flight: InFlight, said: LogBudget,
                 stats: Callable[[], dict] | None = None,
                 latest: Callable[[], tuple[Image, Recognition] | None] | None = None) -> APIRouter:
    def find(name: str) -> Concept:
        concept = home.store.find(_name(name))
        if concept is None:
            raise ApiError(f"no concept named {quoted(validate_name(name))}", 404)
        return concept

    router = APIRouter(prefix="/api", responses=ERRORS, dependencies=[Depends(known_query)], strict_content_type=False,
                       route_class=url_first(find))
    writes = threading.Lock()  # one write at a time: a name is checked and taken under it
    # One model job (embedding, recognition, an answer) at a time, and one upload decoded at its full size (a
    # 100-megapixel one takes 0.7 GB while it is: four sent at once took 2.9 GB, more than a Jetson can spare).
    thinking = threading.Lock()
    line = Line(limits.waiting)  # those waiting for any of the locks, bounded
    thumbnails = Thumbnails()  # made one at a time under a lock of their own: no model needed
    downloads = OneDownload(said)  # one backup made or sent at a time: each takes the memory's size in $TMPDIR
    links = DownloadLinks()  # backups made for a link the browser downloads itself
    started = time.monotonic()

    @contextmanager
    def changing() -> Iterator[None]:
        """The turn to change the memory, one at a time; a server stopping waits for a change that took it
        (`InFlight.begin_change`), and refuses one that had not."""
        with line.waiting_for(writes):
            in_flight.begin_change()
            yield

    def refuse_taken(name: str, owner: int | None = None, hint: str = "") -> None:
        try:
            home.store.refuse_taken(name, owner=owner, hint=hint)
        except NameTakenError as e:
            raise ApiError(str(e), 409) from None

    def concept_json(concept: Concept) -> dict:
        base = f"/api/concepts/{quote(concept.name, safe='')}/photos"
        photos = [{"id": v.id, "sha256": v.image_sha256, "url": f"{base}/{v.id}"}
                  for v in home.store.views(concept.id)]
        return {"name": concept.name, "category": concept.category, "description": concept.description,
                "views": concept.views, "created": concept.created, "updated": concept.updated, "photos": photos}

    def remember(run: Callable[[list[Path]], Concept], photos: list[Photo]) -> Concept:
        with as_files(photos) as (paths, labels):
            try:
                with thinking:
                    return run(paths)
            except (ApiError, DeviceError):  # (the device's trouble: answered as such)
                raise
            except NameTakenError as e:  # taken by another writer while the photos were read
                raise ApiError(str(e), 409) from None
            except UnknownConceptError as e:  # forgotten by another writer while the photos were read
                raise ApiError(str(e), 404) from None
            except FaceChoiceError as e:  # which face is the person's: the client may show them to choose from
                raise ApiError(relabel(e, labels), 422, _face_choice(e, paths)) from None
            except EdgeRapError as e:  # the photos' content, the box or the description: the request's fault
                raise ApiError(relabel(e, labels), 422) from None

    @router.get("/health", response_model=schemas.Health, summary="Is the server up (no token needed)")
    def health() -> dict:
        return {"ok": True}

    @router.get("/concepts", response_model=list[schemas.ConceptOut])
    def list_concepts() -> list[dict]:
        return [concept_json(c) for c in home.concepts()]

    @router.post("/concepts", status_code=201, response_model=schemas.ConceptOut, dependencies=FORM, responses=FULL)
    def add_concept(name: Annotated[str, Form()], photo: Annotated[list[UploadFile], File()],
                    description: Annotated[str, Form()] = "", category: Annotated[str, Form()] = "",
                    box: Annotated[str | None, Form(description="x0,y0,x1,y1 in the photo's pixels")] = None) -> dict:
        name = _name(name, new_name)
        _one_line(description, "description", MAX_DESCRIPTION)
        _one_line(category, "category", 64)
        region = _box(box)
        _counted(photo, limits)
        with changing():
            photos = _photos(photo)
            refuse_taken(name, hint="add photos to it instead, or another name")
            concept = remember(lambda paths: home.memory.remember(name, paths, description, category, region), photos)
        return concept_json(concept)

    @router.get("/concepts/{name}", response_model=schemas.ConceptOut)
    def get_concept(name: str) -> dict:
        return concept_json(find(name))

    @router.patch("/concepts/{name}", response_model=schemas.ConceptOut, dependencies=JSON,
                  responses=FULL)
    def change_concept(request: Request, name: str, change: schemas.ConceptPatch) -> dict:
        if not change.model_fields_set:  # `{}`: was a 200 that changed nothing
            raise ApiError(fieldless(request), 422)
        if nulls := sorted(f for f in change.model_fields_set if getattr(change, f) is None):  # was a 200 no-op
            raise ApiError(f"{nulls[0]}: null; leave the field out to keep it as it is", 422)
        new = _name(change.name) if change.name is not None else None
        _one_line(change.description, "description", MAX_DESCRIPTION)
        _one_line(change.category, "category", 64)
        with changing():
            concept = find(name)
            if new is not None and new != concept.name:  # (an old memory's "..." sent back as it is: no change)
                _name(new, new_name)
                refuse_taken(new, owner=concept.id)
            if change.description is not None or change.category is not None:
                with thinking:  # a concept that becomes a person has its photos' faces registered
                    home.memory.edit(concept.name, change.description, change.category)
            if new is not None and new != concept.name:
                home.rename(concept.name, new)
            return concept_json(find(new or concept.name))

    @router.delete("/concepts/{name}", status_code=204, response_class=Response, responses=FULL)
    def forget_concept(name: str) -> Response:
        with changing():
            home.forget(find(name).name)
        return Response(status_code=204)

    @router.post("/concepts/{name}/photos", status_code=201, response_model=schemas.ConceptOut,
                 dependencies=FORM, responses=FULL)
    def add_photos(name: str, photo: Annotated[list[UploadFile], File()],
                   box: Annotated[str | None, Form(description="x0,y0,x1,y1 in the photo's pixels")] = None) -> dict:
        region = _box(box)
        _counted(photo, limits)
        with changing():
            photos = _photos(photo)
            concept = find(name)
            concept = remember(lambda paths: home.memory.add_views(concept.name, paths, region), photos)
        return concept_json(concept)

    def photo_of(name: str, photo_id: int) -> tuple[Concept, Path]:
        """A concept's photo file, or 404."""
        concept = find(name)
        view = next((v for v in home.store.views(concept.id) if v.id == photo_id), None)
        if view is None:
            raise ApiError(f"<{concept.name}> has no photo {photo_id}", 404)
        path = Path(view.image_path)
        if not path.is_file() or path.is_symlink() or path.resolve().parent.parent != home.store.images_dir.resolve():
            raise ApiError(f"photo {photo_id} of <{concept.name}> is missing from the memory", 404)
        return concept, path

    @router.get("/concepts/{name}/photos/{photo_id}", response_class=FileResponse,
                responses={200: {"content": {"image/*": {}}}})
    def get_photo(name: str, photo_id: int, size: Annotated[int | None, Query(
            ge=16, le=MAX_SIDE, description="the longer side of a JPEG to send instead of the stored file (upright, "
                                            "sRGB): what a screen shows, not a 12 MP photo")] = None) -> Response:
        concept, path = photo_of(name, photo_id)

        def stored(read: Callable[[], T]) -> T:
            """What `read` makes of the photo; one damaged since, or no longer readable, is the device's trouble,
            unless it was forgotten meanwhile (404)."""
            try:
                return read()
            except EdgeRapError as e:
                photo_of(name, photo_id)
                why = str(e).removeprefix(f"{path}: ")
                raise DeviceError(path, f"photo {photo_id} of <{concept.name}> cannot be read: {why}") from None

        if size is None:
            with line.waiting_for(thumbnails.making):  # (a HEIC with GPS is decoded, as a card's photo is)
                private = stored(lambda: without_location(path))
            if private is None:
                return WholeFile(path, media_type=sniff_file(path))
            return Response(private[0], media_type=private[1])  # never where it was taken (EXIF GPS)
        if (made := thumbnails.cached(path, size)) is None:  # made for a HEAD too: only the making says whether
            # the GET would be a 200 or a 503 (a photo damaged since), and how long; kept, the GET after costs nothing
            with line.waiting_for(thumbnails.making):  # not the model's lock: making one needs no model
                made = stored(lambda: thumbnails.make(path, size))
            photo_of(name, photo_id)  # 404 where it was forgotten while it was made
        return Response(made, media_type="image/jpeg")

    @router.post("/recognize", response_model=schemas.RecognitionOut, summary="The same JSON as recognize --json",
                 dependencies=FORM, responses=UPLOAD_FULL)
    def recognize(photo: Annotated[UploadFile, File()]) -> dict:
        name = _plain_name(photo.filename)
        label = f"photo ({name})" if name else "photo"
        with line.waiting_for(thinking):
            image = replace(_decoded(photo, label), source=name or "photo")  # "image": the CLI's
            return home.recognize(image).to_json()

    @router.post("/ask", summary="Ask about a photo, or without one as the device's voice is asked (the cameras' "
                 "`here` camera's newest frame, the sightings); `Accept: text/event-stream` streams it. A question "
                 'without a photo may also come as JSON, {"question": "..."}',
                 responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}, **ASK_FULL},
                 openapi_extra=QUESTION_BODY)
    def ask(request: Request, question: Annotated[str, Form()] = "",
            photo: Annotated[UploadFile | None, File()] = None,
            json_question: Annotated[str | None, Depends(_json_question)] = None) -> Response:
        question = check_question(question if json_question is None else json_question, limits.question_chars)
        image = None
        if photo is not None:
            with line.waiting_for(thinking):
                image = _decoded(photo, "photo")
        if not question.strip() and image is None:
            raise ApiError("ask needs a question, a photo, or both", 422)

        def answer(on_text: Callable[[str], None] | None = None) -> dict:
            if image is not None:
                return {**home.assistant.ask(question, image, on_text=on_text).to_json(), "image": "photo"}
            return _household_answer(home, question, latest() if latest else None, on_text)

        if "text/event-stream" in request.headers.get("accept", ""):
            return StreamingResponse(_answer_stream(lambda: line.waiting_for(thinking), answer, said),
                                     media_type="text/event-stream")
        with line.waiting_for(thinking):
            return TextJSONResponse(answer())  # compact UTF-8, as every answer (json.dumps spaced and escaped it)

    @router.get("/events", response_model=list[schemas.EventOut], responses=LOG_FULL)
    def events(since: Annotated[str | None, Query(description="30s, 10m, 2h, 1d, 1w or an ISO date-time")] = None,
               until: Annotated[str | None, Query(description="as since: only the events before then")] = None,
               name: str | None = None) -> list[dict]:
        # an empty value is one not given, as a form leaves a field (issue 12 writes the route
        # `/api/events?since=&name=`); the CLI's `--since ""` stays an error: a shell's unset variable
        now = time.time()  # (`?since=1d&until=1d`, read a moment apart, was [], not refused)
        start, end = _when("since", since, now), _when("until", until, now)
        if start is not None and end is not None and end <= start:
            raise ApiError(f"until {quoted(until)} is not after since {quoted(since)}", 422)
        stored = home.events_name(_name(name))[0] if name else None  # as the CLI: any case, a gone one's; else 404
        return [_event_json(e) for e in home.events.query(start, stored, until=end)]

    @router.get("/events/{event_id}/snapshot", response_class=FileResponse,
                responses={200: {"content": {"image/jpeg": {}}}, **LOG_FULL})
    def snapshot(event_id: int) -> WholeFile:
        event = home.events.get(event_id)
        if event is None or not event.snapshot:
            raise ApiError(f"no snapshot for event {event_id}", 404)
        path = Path(event.snapshot)
        if not SNAPSHOT_NAME.match(path.name) or path.is_symlink() or not path.is_file():
            raise ApiError(f"the snapshot of event {event_id} is gone", 404)
        return WholeFile(path, media_type="image/jpeg")

    @router.get("/backup", response_class=StreamingResponse, summary="A fresh backup of the memory, as `edge-rap "
                "backup` writes it, without the API's token", responses={
                    200: {"content": {"application/x-tar": {}}},
                    503: {"model": schemas.Error, "description": "another download is being made or sent (one at a "
                          "time; Retry-After), or the device's trouble"},
                    507: {"model": schemas.Error, "description": "no room for the backup in the temporary folder"}})
    def backup(request: Request) -> Response:
        if request.method == "HEAD":  # its status and headers, the backup not made (nor its length known)
            return _attachment_head(downloads.name_if_made(home))
        links.expire_unread()  # a link saved already, or never opened, does not hold this download off
        return _attachment(downloads.fresh(home).reader())

    @router.post("/backup/link", status_code=201, response_model=schemas.BackupLink,
                 summary="A fresh backup, as GET /api/backup makes it, behind a link without the token that a browser "
                 "downloads itself (to disk, not into the page's memory): within `expires_s`", responses={
                     503: {"model": schemas.Error, "description": "another download is being sent, or the device's "
                           "trouble"},
                     507: {"model": schemas.Error, "description": "no room for the backup in the temporary folder"}})
    def backup_link() -> dict:
        links.expire_unread()  # a link saved already, or never opened (a blocked download), does not hold this one off
        download = downloads.fresh(home, reusable=True)
        ticket = links.add(download)
        return {"url": f"/api/downloads/{ticket}", "name": download.name, "size": download.size,
                "expires_s": links.expires_s}

    @router.get("/downloads/{ticket}", response_class=StreamingResponse, summary="The backup a link was made for "
                "(POST /api/backup/link): no token, the link is its own credential, until it expires", responses={
                    200: {"content": {"application/x-tar": {}}},
                    404: {"model": schemas.Error, "description": "a link expired or never made"}})
    def download(request: Request, ticket: str) -> Response:
        reader = links.open(ticket)
        if reader is None:
            raise ApiError(f"no such download: a link opens its backup for {links.expires_s:.0f} s after it is made, "
                           "or until another download (make another)", 404)
        if request.method == "HEAD":  # (its file not read for no body)
            reader.close()
            return _attachment_head(reader.download.name, reader.download.size)
        return _attachment(reader)

    @router.get("/stats", response_model=schemas.Stats, response_model_exclude_none=True,
                summary="The daemon's latency per stage, FPS, dropped frames")
    def daemon_stats() -> dict:
        if stats is None:
            return {"daemon": False, "uptime_s": round(time.monotonic() - started, 1)}
        return {"daemon": True, **stats()}

    return router


def _attachment(reader: Reader) -> StreamingResponse:
    """A backup sent as a file to save; this request's reading released once sent or the client leaves."""
    download = reader.download
    return StreamingResponse(reader.chunks(), media_type="application/x-tar", background=BackgroundTask(
        reader.close), headers=_attachment_headers(download.name, download.size))


def _attachment_head(name: str, size: int | None = None) -> Response:
    """A HEAD's answer for a backup: a GET's headers, without Content-Length where the backup was not made to know
    it."""
    headers = _attachment_headers(name, size)
    return _unmade("application/x-tar", headers) if size is None else \
        Response(media_type="application/x-tar", headers=headers)


def _unmade(media_type: str, headers: dict[str, str] | None = None) -> Response:
    """A HEAD's answer for what its GET makes first (a backup), not made: the GET's headers without
    Content-Length, which only the making tells (RFC 9110 8.6, 9.3.2; Starlette's 0 would be false)."""
    response = Response(media_type=media_type, headers=headers)
    del response.headers["content-length"]
    return response


def _attachment_headers(name: str, size: int | None) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"',
            **({"Content-Length": str(size)} if size is not None else {})}


def _event_json(event: Event) -> dict:
    """As `events --json` gives it, with its id and the snapshot as the URL that serves it."""
    return {"id": event.id, **event.to_json(),
            "snapshot": f"/api/events/{event.id}/snapshot" if event.snapshot else None}


def _household_answer(home: Household, question: str, frame: tuple[Image, Recognition] | None,
                      on_text: Callable[[str], None] | None) -> dict:
    """A question without a photo, answered as the device's voice answers it: about the newest frame of the
    daemon's `here` camera (when one runs in this process), "where is X?" from it or the sightings, a name said
    alike of two concepts asked back; the same keys as an answer about a photo, `image` saying what was looked at."""
    said = reply(home, question, *(frame or (None, None)), on_text=on_text)
    return {**as_answer(home, said).to_json(), "image": "camera" if said.used_image else None}


def _answer_stream(turn: Callable[[], ContextManager], answer: Callable[..., dict], said: LogBudget) -> Iterator[str]:
    """Server-Sent Events: `text` events as the answer is generated, then one `answer` (or `error`) event; a
    failure's log line rationed by `said`."""
    chunks: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            with turn():  # (the device busy: said as the stream's error event)
                answered = answer(lambda t: chunks.put(("text", {"text": t})))
            chunks.put(("answer", answered))
        except EdgeRapError as e:
            chunks.put(("error", {"error": for_client(e, "POST /api/ask", said, "/api/ask")}))
        except Exception as e:  # the stream has begun: the failure is its last event, the details in the log
            said.log(log, logging.ERROR, "failed: /api/ask", "POST /api/ask failed", exc_info=e)
            chunks.put(("error", {"error": "internal error (the server's log has the details)"}))

    # in the request's context: the lines the answer causes are rationed as the request's (serve/request_lines.py)
    threading.Thread(target=contextvars.copy_context().run, args=(work,), name="ask", daemon=True).start()
    while True:
        kind, data = chunks.get()
        yield sse_event(kind, data)
        if kind != "text":
            return
