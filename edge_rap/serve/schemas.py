"""What the API answers, as pydantic models: they make the published OpenAPI schema that clients, the fuzz
test and the security test read."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema


class FaceChoice(BaseModel):
    photo: int = Field(description="which upload shows several faces, from 1")
    boxes: list[list[int]] = Field(description="its faces, x0,y0,x1,y1 in its upright pixels: send one as `box`")


class Error(BaseModel):
    error: str
    faces: FaceChoice | None = Field(None, description="a person's photo with several faces: the ones to choose from")


class Health(BaseModel):
    ok: bool


class BackupLink(BaseModel):
    url: str = Field(description="where the backup is downloaded, without the token: as often as asked, within "
                     "`expires_s`")
    name: str = Field(description="the file's name (Content-Disposition gives it too)")
    size: int = Field(description="bytes")
    expires_s: float


class PhotoRef(BaseModel):
    id: int
    sha256: str = Field(description="the stored photo's, as it was added (what `companion sync` compares its files "
                        "with); a photo sent from `url` without where it was taken is other bytes")
    url: str


class ConceptOut(BaseModel):
    name: str
    category: str
    description: str
    views: int
    created: float
    updated: float
    photos: list[PhotoRef]


class ConceptPatch(BaseModel):
    """Any of the three, at least one; a new name renames (its events follow). Any other field is refused (422): a
    misspelt one ("descripton") would otherwise be answered 200 with nothing changed; so is none (`{}`, no body)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    # published as strings: null is refused in words (422, "leave the field out"), where the schema allowed it
    name: Annotated[str | None, WithJsonSchema({"type": "string"})] = None
    description: Annotated[str | None, WithJsonSchema({"type": "string"})] = None
    category: Annotated[str | None, WithJsonSchema({"type": "string"})] = None


class Question(BaseModel):
    """POST /api/ask's question sent as JSON, without a photo (a photo goes in a form, the question beside it)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    question: str


class Found(BaseModel):
    name: str
    score: float
    box: list[int]


class RecognitionOut(BaseModel):
    image: str
    concepts: list[Found]


class EventOut(BaseModel):
    id: int
    type: str
    name: str
    camera: str
    time_s: float
    wall: float
    box: list[int] | None = None
    score: float | None = None
    said: str | None = None
    snapshot: str | None = None


class Stats(BaseModel):
    """`daemon` is false when no daemon runs in this process; otherwise its figures follow."""

    daemon: bool
    uptime_s: float | None = None
    fps: float | None = None
    frames_read: int | None = None
    frames_processed: int | None = None
    frames_dropped: int | None = None
    stages_ms: dict[str, float] | None = None
