"""People by their faces, end to end: remembering a person registers the face; recognition finds it with its box."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from edge_rap.app import open_memory, open_retriever
from edge_rap.cli import main
from edge_rap.errors import EdgeRapError
from edge_rap.perceive.faces import FACE_SPACE
from edge_rap.perceive.boxes import iou
from edge_rap.retrieve import Retriever
from edge_rap.types import Box, Image
from fakes import agree_with_replaced_photo
from photos import paste, photo, save_photo, side_by_side

pytest.importorskip("cv2")


@pytest.fixture
def people(tmp_path, settings, embedder):
    memory = open_memory(settings, embedder, tmp_path / "mem")
    memory.remember("eileen", [save_photo(tmp_path, "astronaut")], "the astronaut", "person")
    memory.remember("grace", [save_photo(tmp_path, "grace_hopper")], "Grandma Grace", "person")
    memory.remember("mug", [save_photo(tmp_path, "coffee")], "the cup", "thing")
    yield memory
    memory.close()


def test_a_person_is_remembered_with_a_face_view_a_thing_without(people):
    assert people.store.space_names() == sorted(["efficientnet-lite0-int8", FACE_SPACE])
    eileen, mug = people.get("eileen"), people.get("mug")
    assert eileen.views == 1  # the face is not counted as another photo
    (face,) = people.store.views(eileen.id, kind="face")
    assert 150 <= face.box.x0 < face.box.x1 <= 300 and 30 <= face.box.y0 < face.box.y1 <= 200  # her face, not the photo
    assert people.store.views(mug.id, kind="face") == []


def test_a_person_of_a_category_of_several_words_is_remembered_with_a_face_as_who_counts_them(tmp_path, settings,
                                                                                            embedder):
    # Before: only the ten words alone were people: `--category "little girl"` registered no face, though "Is anyone
    # home?" counts her by her last word; a "plastic baby" is a thing to both
    memory = open_memory(settings, embedder, tmp_path / "mem")
    girl = memory.remember("ada", [save_photo(tmp_path, "grace_hopper")], "", "little girl")
    toy = memory.remember("toy", [save_photo(tmp_path, "astronaut")], "", "plastic baby")
    assert len(memory.store.views(girl.id, kind="face")) == 1 and memory.store.views(toy.id, kind="face") == []
    memory.close()


def test_a_group_of_kids_is_remembered_whole_not_asked_which_face(tmp_path, settings, embedder):
    # Before: a plural was a person's category, so a photo of the kids together was refused "2 faces found"
    memory = open_memory(settings, embedder, tmp_path / "mem")
    both = save_photo(tmp_path, "both", side_by_side("astronaut", "grace_hopper"))
    kids = memory.remember("kids", [both], "", "kids")
    assert kids.views == 1 and memory.store.views(kids.id, kind="face") == []
    memory.close()


def test_a_person_is_found_by_the_face_never_by_the_rest_of_the_photo(people, settings):
    # Her own photo with the face covered still matches her whole-photo views (clothes, background); a person
    # named where no face of hers is would be announced to the household.
    grace = people.get("grace")
    (face,) = people.store.views(grace.id, kind="face")
    covered = photo("grace_hopper").copy()
    covered[face.box.y0:face.box.y1, face.box.x0:face.box.x1] = 128
    blind = Retriever(people.store, people.embedder)  # without face models her photo's views stand in, and match
    assert "grace" in {h.concept.name for h in blind.recognize(Image(covered, "no face")).hits}
    retriever = open_retriever(people, settings)
    recognition = retriever.recognize(Image(covered, "no face"))
    assert "grace" not in {h.concept.name for h in recognition.hits + recognition.candidates}
    assert "grace" in {h.concept.name for h in retriever.recognize(Image(photo("grace_hopper"), "face")).hits}


def test_the_rest_of_a_persons_photo_never_hides_a_thing_in_the_frame(people, settings):
    # The mug in a corner of a frame that is otherwise Grace's own photo: her photo's views outscored it there
    # ("the frame is her photo, the mug a part of it") and dropped it, and then were dropped themselves.
    frame = Image(paste_into(photo("grace_hopper"), photo("coffee"), 0.15), "grace with the mug")
    blind = Retriever(people.store, people.embedder)  # her photo's views take part: the mug is lost
    assert [h.concept.name for h in blind.recognize(frame).hits] == ["grace"]
    hits = open_retriever(people, settings).recognize(frame).hits
    assert {h.concept.name for h in hits} == {"grace", "mug"}, [(h.concept.name, h.score, h.threshold) for h in hits]


def paste_into(background: np.ndarray, item: np.ndarray, width_fraction: float) -> np.ndarray:
    """The item scaled to a fraction of the background's width, in its bottom right corner."""
    h, w = background.shape[:2]
    iw = int(w * width_fraction)
    ih = int(item.shape[0] * iw / item.shape[1])
    out = background.copy()
    out[h - ih:, w - iw:] = np.asarray(PILImage.fromarray(item).resize((iw, ih)))
    return out


def test_two_people_in_one_frame_are_each_found_with_their_face_box(people, settings):
    frame = Image(side_by_side("astronaut", "grace_hopper"), "frame")
    hits = open_retriever(people, settings).recognize(frame).hits
    boxes = {h.concept.name: h.box for h in hits}
    assert {"eileen", "grace"} <= set(boxes)
    assert boxes["eileen"].x1 <= 300 and boxes["grace"].x0 >= 300  # each on their own side
    assert iou(boxes["eileen"], boxes["grace"]) == 0


def test_a_person_pasted_small_and_mirrored_is_found_by_the_face(people, settings):
    frame = paste(photo("brick"), photo("grace_hopper")[:, ::-1], 0.35, 0.9, 0.2)
    hits = open_retriever(people, settings).recognize(Image(frame, "frame")).hits
    grace = [h for h in hits if h.concept.name == "grace"]
    assert grace and grace[0].box.x0 >= 640 * 0.5  # the face box is on the right, where she was pasted


def test_no_face_or_several_faces_are_the_users_to_resolve(people, tmp_path, capsys):
    # "rocket.png: no face found" alone left a user who gave --category person to guess why a face was wanted
    with pytest.raises(EdgeRapError, match="no face found; a person is remembered by the face: give a photo that "
                                           "shows one, or a category that is not a person's"):
        people.remember("nobody", [save_photo(tmp_path, "rocket")], "", "person")
    both = save_photo(tmp_path, "astronaut", side_by_side("astronaut", "grace_hopper"), filename="both.png")
    with pytest.raises(EdgeRapError, match="which face\\? give its box x0,y0,x1,y1 "
                                           "\\(--box; in a RAP database entry, its box\\)"):
        people.remember("someone", [both], "", "person")
    assert {c.name for c in people.concepts()} == {"eileen", "grace", "mug"}
    chosen = people.remember("left", [both], "", "person", box=Box(0, 0, 300, 300))
    (face,) = people.store.views(chosen.id, kind="face")
    assert face.box.x1 <= 300
    twins = save_photo(tmp_path, "twins", side_by_side("grace_hopper", "grace_hopper"))
    with pytest.raises(EdgeRapError, match="which face\\? give its box .*\\(--box;"):  # not remember's alone
        people.add_views("grace", [twins])  # two faces equally like hers: which one is the user's to say
    assert people.get("grace").views == 1  # refused whole: kept without a face, the group would be taken for her
    grace = people.add_views("grace", [twins], box=Box(300, 0, 600, 300))  # as remember: --box picks the one meant
    faces = people.store.views(grace.id, kind="face")
    assert grace.views == 2 and len(faces) == 2 and faces[1].box.x0 >= 300


def test_another_photo_of_someone_known_registers_their_face_among_others(people, tmp_path):
    """A group photo added to a known person needs no box when one face is clearly theirs: found by their
    registered face, even when another face is larger (the one a new person's photo would be taken for)."""
    both = save_photo(tmp_path, "both", side_by_side("astronaut", "grace_hopper"))
    grace = people.add_views("grace", [both])
    assert grace.views == 2 and people.store.views(grace.id, kind="face")[1].box.x0 >= 300
    behind = photo("astronaut").copy()
    small = np.asarray(PILImage.fromarray(photo("grace_hopper")).resize((100, 117)))
    behind[380:497, 400:500] = small  # grace far smaller, behind: the astronaut's is the largest face
    grace = people.add_views("grace", [save_photo(tmp_path, "behind", behind)])
    assert people.store.views(grace.id, kind="face")[2].box.x0 >= 400  # grace's own, small as it is


def test_forgetting_a_person_removes_the_face_vectors(people, settings):
    retriever = open_retriever(people, settings)
    before = len(retriever.faces.view)
    people.forget("grace")
    assert len(retriever.faces.view) == before - 2  # the face and its mirror image
    frame = Image(side_by_side("astronaut", "grace_hopper"), "frame")
    assert "grace" not in [h.concept.name for h in retriever.recognize(frame).hits]


def test_a_reindex_counts_the_faces_apart_from_the_photos(people, capsys):
    # three photos, two of people: "re-embedded 5 reference views", where `concepts` counts 3 views
    done = people.reindex()
    assert (done.views, done.faces) == (3, 2)
    assert main(["reindex", "--memory", str(people.root)]) == 0
    assert capsys.readouterr().out == "re-embedded 3 reference views and 2 faces\n"
    assert main(["reindex", "--json", "--memory", str(people.root)]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == 2


def test_a_face_box_outside_a_photo_replaced_by_a_smaller_one_does_not_stop_the_reindex(people):
    # reindex stopped at "face box [...] is empty inside a 100x100 image", and nobody after it was reindexed
    (face,) = people.store.views(people.get("eileen").id, kind="face")
    PILImage.fromarray(photo("astronaut")[:100, :100]).save(face.image_path)  # her face is not in it any more
    agree_with_replaced_photo(people.store, Path(face.image_path))  # (else its changed bytes refuse it at once)
    done = people.reindex()
    assert [(p.concept, p.photo) for p in done.unreadable] == [("eileen", face.image_path)]
    assert f"box {face.box.as_list()} keeps under 4 pixels a side of the 100x100 image" in done.unreadable[0].problem
    assert done.unrecognisable == []  # her photo (no box) is re-embedded: a thing's recognition still finds her


def test_a_reindex_embeds_a_face_the_photos_edge_cuts_as_remember_did(people, tmp_path):
    # remember crops such a face from the detector's whole box, black past the edge; the reindex cropped the stored
    # box, cut to the photo, and stretched it: every reindex changed the person's registered face to one that
    # matched her, cut the same way in a frame, less (0.81 -> 0.64 in the edge crop's measure)
    pixels = photo("astronaut")
    (face,) = people.store.views(people.get("eileen").id, kind="face")
    cut = np.ascontiguousarray(pixels[:, int(face.box.x0 + 0.4 * face.box.width):])
    PILImage.fromarray(cut).save(tmp_path / "edge.png")
    people.remember("edge", [tmp_path / "edge.png"], "", "person")
    (stored,) = people.store.views(people.get("edge").id, kind="face")
    assert stored.box.x0 == 0  # the photo's edge cuts it
    remembered = people.store.concept_vectors(people.get("edge").id, FACE_SPACE)
    people.reindex()
    reindexed = people.store.concept_vectors(people.get("edge").id, FACE_SPACE)
    assert np.sum(remembered * reindexed, axis=1).min() > 0.99


def test_cli_remember_a_person_and_recognize(tmp_path, settings, capsys):
    import json

    mem = str(tmp_path / "cli-mem")
    assert main(["remember", "grace", str(save_photo(tmp_path, "grace_hopper")), "--category", "person",
                 "--memory", mem]) == 0
    frame = save_photo(tmp_path, "grace_hopper", paste(photo("gravel"), photo("grace_hopper"), 0.4, 0.1, 0.5), "f.jpg")
    capsys.readouterr()
    assert main(["recognize", str(frame), "--json", "--memory", mem]) == 0
    (hit,) = json.loads(capsys.readouterr().out)["concepts"]
    assert hit["name"] == "grace" and hit["box"][2] <= 640 * 0.6  # the face, on the left, not the whole frame


def test_one_group_photo_is_added_to_each_person_in_it(people, tmp_path, settings):
    """The family photo added to one person kept it whole as theirs, so added to the next person in it, it was
    refused as "already a photo of <grace>". Each person's view of it is now their face, as with its --box."""
    both = save_photo(tmp_path, "both", side_by_side("astronaut", "grace_hopper"))
    grace = people.add_views("grace", [both])
    eileen = people.add_views("eileen", [both])
    assert grace.views == eileen.views == 2
    for concept, side in ((grace, 1), (eileen, 0)):
        photo_view, face_view = (people.store.views(concept.id, kind=kind)[-1] for kind in ("photo", "face"))
        assert photo_view.box == face_view.box
        assert photo_view.box.x0 // 300 == photo_view.box.x1 // 300 == side  # that person's face, not the group
    single = people.add_views("grace", [save_photo(tmp_path, "grace_hopper", photo("grace_hopper")[:, ::-1],
                                                   filename="mirrored.png")])
    assert people.store.views(single.id, kind="photo")[-1].box is None  # a photo of one face stays whole


def test_which_face_lists_every_face_of_a_large_group(people, tmp_path):
    """Of a family photo with 12 faces, the first 6 were listed (and given to the household page to tap): the
    other people in it could not be chosen at all."""
    group = save_photo(tmp_path, "group", side_by_side(*["astronaut", "grace_hopper"] * 4), filename="group.png")
    with pytest.raises(EdgeRapError, match="8 faces found") as e:
        people.remember("someone", [group], "", "person")
    assert len(e.value.boxes) == 8 and sorted(b.x0 // 300 for b in e.value.boxes) == list(range(8))
    listed = str(e.value).split("(")[1].split(")")[0].split("; ")
    assert listed == [",".join(map(str, b.as_list())) for b in e.value.boxes]


def test_which_face_lists_boxes_in_the_files_pixels_for_a_reduced_photo(people, tmp_path):
    big = np.concatenate([np.asarray(PILImage.fromarray(photo(n)).resize((2000, 2000)))
                          for n in ("astronaut", "grace_hopper")], axis=1)  # 4000 x 2000: decoded at 2048 x 1024
    path = save_photo(tmp_path, "astronaut", big, "big.jpg")
    with pytest.raises(EdgeRapError, match="which face") as e:
        people.remember("someone", [path], "", "person")
    listed = [[int(v) for v in b.split(",")] for b in str(e.value).split("(")[1].split(")")[0].split("; ")]
    assert min(b[0] for b in listed) < 2000 <= max(b[0] for b in listed)  # one face on each half of the file
    right = next(b for b in listed if b[0] >= 2000)
    chosen = people.remember("grace2", [path], "", "person", box=Box(*right))  # the listed box selects it
    (face,) = people.store.views(chosen.id, kind="face")
    assert face.box.x0 >= 2000


def test_a_category_change_adds_or_removes_the_face(people, settings):
    frame = Image(side_by_side("astronaut", "grace_hopper"), "frame")
    people.edit("grace", category="painting")
    assert people.store.views(people.get("grace").id, kind="face") == []
    by_face = open_retriever(people, settings).face_hits(frame)
    assert [h.concept.name for h in by_face] == ["eileen"]
    people.edit("grace", category="person")
    (face,) = people.store.views(people.get("grace").id, kind="face")
    assert {h.concept.name for h in open_retriever(people, settings).face_hits(frame)} == {"eileen", "grace"}
    # a thing without a face cannot become a person: said about its photo as the user knows it, not its path
    with pytest.raises(EdgeRapError, match=r"^photo 1 of <mug>: no face found: a person needs a photo that shows "
                                           "one face; nothing was changed"):
        people.edit("mug", category="person")
    assert people.get("mug").category != "person"


def test_a_person_remembered_without_the_face_models_has_the_face_registered_once_they_are_there(
        tmp_path, settings, embedder):
    """`edge_rap[faces]` installed after the household was remembered: each person stayed without a face, found by
    the whole photo (the clothes and the room) for good, and `edit --category person` did nothing to a person."""
    from edge_rap.memory.memory import Memory

    faceless = Memory(tmp_path / "mem", embedder, faces=lambda: None)
    faceless.remember("grace", [save_photo(tmp_path, "grace_hopper")], "Grandma Grace", "person")
    faceless.remember("mo", [save_photo(tmp_path, "coffee")], "seen from behind", "person")
    faceless.close()
    memory = open_memory(settings, embedder, tmp_path / "mem")
    grace = memory.get("grace")
    assert memory.store.views(grace.id, kind="face") == []
    memory.edit("grace", category="person")
    (face,) = memory.store.views(grace.id, kind="face")
    hits = open_retriever(memory, settings).face_hits(Image(side_by_side("astronaut", "grace_hopper"), "frame"))
    assert [h.concept.name for h in hits] == ["grace"]
    memory.edit("grace", description="Grandma")  # no category given: nothing to register again
    assert memory.store.views(grace.id, kind="face") == [face]
    # the household page sends the category with every edit: a person with no face to find is edited as before
    assert memory.edit("mo", "our son", "person").description == "our son"
    memory.close()


def test_a_damaged_photo_does_not_keep_a_concept_from_becoming_a_person(people, tmp_path, caplog):
    # it stopped the change, saying to restore the file or forget the concept: one lost file among its photos kept a
    # concept from ever becoming a person, also once it had been given another photo
    path = Path(people.store.views(people.get("mug").id)[0].image_path)
    path.write_bytes(bytes(1000))
    with pytest.raises(EdgeRapError, match=r"^photo 1 of <mug> cannot be read \(.*not an image.*\): a person needs a "
                                           r"photo that shows one face; nothing was changed \(add one with add-views"):
        people.edit("mug", category="person")
    assert people.get("mug").category == "thing"
    people.add_views("mug", [_another_photo_of_grace(tmp_path)])
    people.edit("mug", category="person")
    assert "photo 1 of <mug> cannot be read" in caplog.text and "not registered" in caplog.text
    assert len(people.store.views(people.get("mug").id, kind="face")) == 1


def _another_photo_of_grace(folder: Path) -> Path:
    """Grace's photo mirrored: her one face, in a photo that is not <grace>'s (one photo is one concept's)."""
    return save_photo(folder, "grace_hopper", np.ascontiguousarray(photo("grace_hopper")[:, ::-1]),
                      filename="grace-mirrored.png")


def test_a_photo_with_several_faces_does_not_keep_a_concept_from_becoming_a_person(people, tmp_path, caplog):
    # edit takes no box: asking for one ("remember's --box") left no way to make such a concept a person
    both = save_photo(tmp_path, "astronaut", side_by_side("astronaut", "grace_hopper"), filename="both.png")
    group = people.remember("group", [both], "", "poster")
    with pytest.raises(EdgeRapError, match=r"^photo 1 of <group>: 2 faces found \([0-9,; ]+\): a person needs") as e:
        people.edit("group", category="person")
    assert "--box" not in str(e.value) and people.get("group").category == "poster"
    people.add_views("group", [_another_photo_of_grace(tmp_path)])
    people.edit("group", category="person")
    assert "photo 1 of <group>: 2 faces found" in caplog.text and "not registered" in caplog.text
    (face,) = people.store.views(group.id, kind="face")
    assert face.image_sha256 == people.store.views(group.id)[1].image_sha256  # the photo with one face


def test_a_spoken_another_photo_of_a_person_without_one_face_is_said_plainly(people):
    # "This is also Grace" said where her face is not one face in view: the line spoken was the frame's temporary
    # path and boxes with "give its box (--box ...)"
    from types import SimpleNamespace

    from edge_rap.speech.intents import Command, carry_out
    from edge_rap.types import Recognition

    home = SimpleNamespace(memory=people, detector=None, remember=people.remember)
    for pixels, line in ((photo("rocket"), "I see no face here."),
                         (side_by_side("grace_hopper", "grace_hopper"), "I see 2 faces and cannot tell which.")):
        frame = Image(pixels, "frame")
        command, said = carry_out(home, Command("add", "grace"), frame, Recognition("frame", frame.size))
        assert (command.state, said) == ("failed", f"I couldn't add <grace>: {line}")
    assert people.get("grace").views == 1
    dark = Image(np.zeros((480, 640, 3), np.uint8), "frame")  # any other refusal names the frame, not its file
    _, said = carry_out(home, Command("remember", "teddy"), dark, Recognition("frame", dark.size))
    assert said.startswith("I couldn't remember <teddy>: this frame has no detail"), said


def test_a_person_with_a_photo_of_several_faces_survives_an_export_and_import(people, tmp_path, settings, embedder):
    # `edit --category person` leaves such a photo's faces out; the export did not say so, and its import asked
    # "which face?" for that photo: the person was not imported at all ("failed <group>")
    from edge_rap.memory.rapdb import export_rap, import_rap

    both = save_photo(tmp_path, "astronaut", side_by_side("astronaut", "grace_hopper"), filename="both.png")
    group = people.remember("group", [both, _another_photo_of_grace(tmp_path)], "", "poster")
    people.edit("group", category="person")
    database = export_rap(people.store, tmp_path / "export")
    copy = open_memory(settings, embedder, tmp_path / "copy")
    try:
        report = import_rap(copy, database)
        assert report.failed == {} and "group" in report.imported
        faces = [(v.image_sha256, v.box) for v in people.store.views(group.id, kind="face")]
        assert [(v.image_sha256, v.box) for v in copy.store.views(copy.get("group").id, kind="face")] == faces
        assert len(faces) == 1 and copy.get("group").views == 2
    finally:
        copy.close()
