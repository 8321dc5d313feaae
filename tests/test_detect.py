"""Detectors a user brings (YOLO-style ONNX), with small ONNX graphs built here, and region-wise recognition."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage

from edge_rap.app import open_memory
from edge_rap.errors import EdgeRapError
from edge_rap.models.cache import Manifest, sha256_file
from edge_rap.perceive.boxes import iou
from edge_rap.perceive.detect import YoloOnnxDetector
from edge_rap.retrieve import Retriever
from edge_rap.types import Box, Image
from photos import photo, save_photo

SIZE = 320  # the detector's input; a 640 x 480 frame is letterboxed at scale 0.5 with 40 px of padding above
MUG, ROCKET, JUNK = Box(40, 60, 280, 260), Box(380, 150, 600, 440), Box(300, 10, 420, 120)


def _to_input(box: Box) -> list[float]:
    return [box.x0 * 0.5, box.y0 * 0.5 + 40, box.x1 * 0.5, box.y1 * 0.5 + 40]


def _frame() -> np.ndarray:
    canvas = PILImage.fromarray(photo("gravel")).resize((640, 480))
    for name, box in (("coffee", MUG), ("rocket", ROCKET)):
        canvas.paste(PILImage.fromarray(photo(name)).resize((box.width, box.height)), (box.x0, box.y0))
    return np.asarray(canvas)


def _graph(outputs: dict[str, np.ndarray], path):
    """An ONNX graph whose outputs are the given constants (plus 0 x the input, so the input is used)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    graph_outputs = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_const"))
        nodes.append(helper.make_node("Add", [f"{name}_const", "nothing"], [f"{name}_f"]))
        if value.dtype.kind == "i":
            nodes.append(helper.make_node("Cast", [f"{name}_f"], [name], to=TensorProto.INT64))
            elem = TensorProto.INT64
        else:
            nodes.append(helper.make_node("Identity", [f"{name}_f"], [name]))
            elem = TensorProto.FLOAT
        graph_outputs.append(helper.make_tensor_value_info(name, elem, list(value.shape)))
    graph = helper.make_graph(nodes, "tiny-detector",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
                              graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def _detector(folder, fmt: str, outputs: dict[str, np.ndarray]) -> YoloOnnxDetector:
    folder.mkdir()
    _graph(outputs, folder / "detector.onnx")
    (folder / "manifest.json").write_text(json.dumps({
        "name": folder.name, "role": "detector", "labels": ["cup", "toy"],
        "files": {"detector": {"path": "detector.onnx", "sha256": sha256_file(folder / "detector.onnx")}},
        "input": {"size": SIZE}, "output": {"format": fmt}}))
    return YoloOnnxDetector(Manifest.load(folder), "cpu")


@pytest.fixture
def three_outputs(tmp_path):
    boxes = np.array([_to_input(MUG), [v + 3 for v in _to_input(MUG)], _to_input(ROCKET), _to_input(JUNK),
                      _to_input(Box(0, 0, 50, 50))])
    return _detector(tmp_path / "yolo", "boxes-scores-classes", {
        "boxes": boxes, "scores": np.array([0.9, 0.8, 0.7, 0.6, 0.1]), "classes": np.array([0, 0, 1, 1, 0])})


def test_boxes_come_back_in_frame_pixels_with_nms_and_a_score_floor(three_outputs):
    regions = three_outputs.detect(Image(_frame(), "frame"))
    assert [(r.label, round(r.score, 2)) for r in regions] == [("cup", 0.9), ("toy", 0.7), ("toy", 0.6)]
    assert iou(regions[0].box, MUG) > 0.97 and iou(regions[1].box, ROCKET) > 0.97
    assert [r.label for r in three_outputs.detect(Image(_frame(), "frame"), vocabulary=["Toy"])] == ["toy", "toy"]


def test_yolov8_layout_decodes_to_the_same_boxes(tmp_path):
    corners = np.array([_to_input(MUG), _to_input(ROCKET)])
    centre = np.stack([(corners[:, 0] + corners[:, 2]) / 2, (corners[:, 1] + corners[:, 3]) / 2,
                       corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1]])
    class_scores = np.array([[0.9, 0.05], [0.1, 0.8]])  # classes x anchors
    detector = _detector(tmp_path / "v8", "yolov8", {"output0": np.concatenate([centre, class_scores])[None]})
    regions = detector.detect(Image(_frame(), "frame"))
    assert [r.label for r in regions] == ["cup", "toy"]
    assert iou(regions[0].box, MUG) > 0.97 and iou(regions[1].box, ROCKET) > 0.97


def test_each_region_names_its_concept_and_junk_names_none(three_outputs, tmp_path, settings, embedder):
    memory = open_memory(settings, embedder, tmp_path / "mem")
    memory.remember("mug", [save_photo(tmp_path, "coffee")], "Dad's cup", "cup")
    memory.remember("rocket", [save_photo(tmp_path, "rocket")], "the model rocket", "toy")
    frame = Image(_frame(), "frame")
    result = Retriever(memory.store, embedder).recognize(frame, regions=three_outputs.detect(frame))
    found = {h.concept.name: h.box for h in result.hits}
    assert set(found) == {"mug", "rocket"}
    assert iou(found["mug"], MUG) > 0.97 and iou(found["rocket"], ROCKET) > 0.97


def test_a_manifest_of_another_role_or_format_is_refused(tmp_path, model_cache):
    with pytest.raises(EdgeRapError, match="not a detector"):
        YoloOnnxDetector(Manifest.load(model_cache / "efficientnet-lite0-int8"))
    with pytest.raises(EdgeRapError, match="unknown output format"):
        _detector(tmp_path / "odd", "ssd",
                  {"boxes": np.zeros((1, 4)), "scores": np.zeros(1), "classes": np.zeros(1, np.int64)})


def test_a_folder_that_is_not_a_model_is_named_as_such(tmp_path, model_cache):
    from edge_rap.models.cache import ModelCache

    (tmp_path / "weights").mkdir()
    with pytest.raises(EdgeRapError, match=r"weights: a folder without manifest.json, not an exported model"):
        ModelCache(model_cache).manifest(str(tmp_path / "weights"))
    # a missing detector is answered with the detectors there (none: the embedders are not offered) and its tool
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "an-embedder").mkdir()
    (cache / "an-embedder" / "manifest.json").write_text('{"role": "image_embedder"}')
    with pytest.raises(EdgeRapError, match=r"\(detectors there: none\); export it with tools/export_detector.py"):
        ModelCache(cache).manifest("nosuch", role="detector")
    with pytest.raises(EdgeRapError, match=r"\(models there: an-embedder\)"):
        ModelCache(cache).manifest("nosuch")


def test_cli_recognize_with_a_detector_and_drawings(three_outputs, tmp_path, settings, capsys):
    from edge_rap.cli import main

    mem = str(tmp_path / "cli-mem")
    assert main(["remember", "mug", str(save_photo(tmp_path, "coffee")), "--category", "cup", "--memory", mem]) == 0
    frame = save_photo(tmp_path, "coffee", _frame(), "frame.png")
    capsys.readouterr()
    argv = ["recognize", str(frame), "--json", "--memory", mem, "--detector", str(tmp_path / "yolo"),
            "--draw", str(tmp_path / "drawn")]
    assert main(argv) == 0
    (hit,) = json.loads(capsys.readouterr().out)["concepts"]
    assert hit["name"] == "mug" and iou(Box(*hit["box"]), MUG) > 0.97
    drawn = np.asarray(PILImage.open(tmp_path / "drawn" / "frame.jpg"))
    assert drawn.shape == (480, 640, 3)
    edge = drawn[MUG.y0 + 20 : MUG.y1 - 20, MUG.x0]  # the box's left edge is drawn in a strong colour
    assert (np.abs(edge.astype(int) - [230, 57, 70]).sum(axis=1) < 90).mean() > 0.8


def _each_profiles_detector(tmp_path, monkeypatch):
    """The mug remembered and a frame of it, then a device profile naming the detector, then one naming a detector
    that is not there: (memory, frame, detector, whether it is there)."""
    from edge_rap.cli import main

    mem = tmp_path / "cli-mem"
    photo = save_photo(tmp_path, "coffee")
    assert main(["remember", "mug", str(photo), "--category", "cup", "--memory", str(mem)]) == 0
    frame = save_photo(tmp_path, "coffee", _frame(), "frame.png")
    profile = tmp_path / "with-detector.toml"
    for model, placed in ((tmp_path / "yolo", True), (tmp_path / "no-such-detector", False)):
        profile.write_text(f'[device]\nname = "with-detector"\n[detector]\nmodel = "{model}"\n')
        monkeypatch.setenv("EDGE_RAP_DEVICE", str(profile))
        yield mem, frame, model, placed


def test_the_profiles_detector_places_concepts_for_recognize_as_for_run(three_outputs, tmp_path, settings, capsys,
                                                                          monkeypatch):
    # `[detector] model` in the device profile was the daemon's alone: `recognize` (and serve, listen) placed
    # concepts by dense matching on the same device, while doctor called the detector required.
    from edge_rap.cli import main

    for mem, frame, _, placed in _each_profiles_detector(tmp_path, monkeypatch):
        capsys.readouterr()
        rc = main(["recognize", str(frame), "--json", "--memory", str(mem)])
        out, err = capsys.readouterr()
        if placed:
            assert rc == 0, err
            (hit,) = json.loads(out)["concepts"]
            assert hit["name"] == "mug" and iou(Box(*hit["box"]), MUG) > 0.97
        else:
            assert rc != 0 and "no-such-detector" in err and len(err.strip().splitlines()) == 1


def test_the_profiles_detector_places_concepts_for_ask_as_for_recognize(three_outputs, tmp_path, settings, capsys,
                                                                          monkeypatch):
    # `ask --image` and /api/ask with a photo (the household's assistant) recognised by dense matching alone, though
    # the README says the profile's detector places concepts for ask as for recognize: a missing one went unsaid.
    from dataclasses import replace

    from edge_rap.cli import main
    from edge_rap.household import Household

    for mem, frame, model, placed in _each_profiles_detector(tmp_path, monkeypatch):
        capsys.readouterr()
        rc = main(["ask", "what is this?", "--image", str(frame), "--json", "--memory", str(mem)])
        out, err = capsys.readouterr()
        with Household(replace(settings, profile=replace(settings.profile, detector=str(model))), mem) as home:
            if placed:
                assert rc == 0, err
                (hit,) = json.loads(out)["concepts"]
                (api,) = home.assistant.ask("what is this?", Image(_frame(), "photo")).concepts  # as /api/ask asks
                assert hit["name"] == "mug" and iou(Box(*hit["box"]), MUG) > 0.97 and iou(api.box, MUG) > 0.97
            else:
                assert rc != 0 and "no-such-detector" in err and len(err.strip().splitlines()) == 1
                with pytest.raises(EdgeRapError, match="no-such-detector"):
                    home.assistant.ask("what is this?", Image(_frame(), "photo"))


def test_drawings_of_inputs_with_one_name_do_not_overwrite_each_other(tmp_path):
    from edge_rap.draw import drawing_paths

    paths = drawing_paths(["a/frame.png", "b/frame.png", "c/frame.jpg", "other.png"], tmp_path)
    assert [p.name for p in paths] == ["frame.jpg", "frame-1.jpg", "frame-2.jpg", "other.jpg"]


def test_drawn_names_grow_with_the_photo_so_they_stay_readable(tmp_path):
    from PIL import Image as PILImage

    from edge_rap.draw import draw_recognition
    from edge_rap.types import Concept, Hit, Image, Recognition

    bo = Concept(1, "bo", "", "", 0.0, 0.0, 1)
    heights = []
    for width in (640, 4000):
        pixels = np.zeros((width * 3 // 4, width, 3), np.uint8)
        box = Box(width // 10, width // 3, width // 2, width // 2)
        out = draw_recognition(Image(pixels, "p"), Recognition("p", (width, width * 3 // 4), [Hit(bo, 0.9, 0.6, box)]),
                               tmp_path / f"{width}.jpg")
        above = np.asarray(PILImage.open(out))[: box.y0 - 4, box.x0: box.x0 + width // 20]  # the photo is black
        heights.append(int((above.max(axis=(1, 2)) > 100).sum()))  # rows of the label's coloured band
    assert heights[0] >= 6 and heights[1] >= 4 * heights[0], heights


def test_detector_none_recognises_by_dense_matching_on_a_profile_that_names_one(three_outputs, tmp_path, settings,
                                                                                 capsys, monkeypatch):
    # A profile's [detector] model placed concepts for every command, and nothing asked for dense matching alone
    # on it but another --device: `--detector ""` is refused as an unset variable.
    import io
    import threading

    from edge_rap.cli import main
    from edge_rap.config import load_settings
    from edge_rap.daemon.config import run_config
    from edge_rap.daemon.service import run_daemon

    for mem, frame, _, _ in _each_profiles_detector(tmp_path, monkeypatch):
        recognize = ["recognize", str(frame), "--json", "--memory", str(mem)]
        capsys.readouterr()
        assert main([*recognize, "--device", "x86-cpu"]) == 0  # as on a profile that names none
        dense = json.loads(capsys.readouterr().out)
        assert main([*recognize, "--detector", "none"]) == 0, capsys.readouterr().err
        assert json.loads(capsys.readouterr().out) == dense
        assert main(["ask", "what is this?", "--image", str(frame), "--json", "--memory", str(mem),
                     "--detector", "none"]) == 0, capsys.readouterr().err
        assert json.loads(capsys.readouterr().out)["concepts"] == dense["concepts"]
        config = run_config({"sources": [str(frame)], "detector": "none", "mute": True}, None)
        summary = run_daemon(load_settings(memory=str(mem)), config, threading.Event(), io.StringIO())
        assert summary.frames_processed == 1 and not summary.source_errors


@pytest.mark.parametrize("argv", [["recognize", "frame.jpg"], ["ask", "what is this?"], ["listen"], ["serve"],
                                  ["run"], ["eval", "localize", "--dataset", "photos"]])
def test_every_command_that_recognises_takes_detector_none_over_the_profiles(tmp_path, monkeypatch, argv):
    from edge_rap.cli import _settings, build_parser

    profile = tmp_path / "with-detector.toml"
    profile.write_text('[device]\nname = "with-detector"\n[detector]\nmodel = "yolo-world"\n')
    monkeypatch.setenv("EDGE_RAP_DEVICE", str(profile))
    parse = build_parser().parse_args
    assert _settings(parse(argv)).profile.detector == "yolo-world"
    assert _settings(parse([*argv, "--detector", "none"])).profile.detector == ""  # dense matching alone
    assert _settings(parse([*argv, "--detector", "None"])).profile.detector == ""  # not a model named "None"
    assert _settings(parse([*argv, "--detector", "owl"])).profile.detector == "owl"


def test_doctor_config_checks_the_detector_run_config_uses(three_outputs, tmp_path, settings, capsys, monkeypatch):
    # doctor --config read run.toml's backups only: `detector = "none"` (dense matching, as the service runs) was
    # still "cannot recognise: missing detector" of the profile's, and a missing one the file names went unsaid.
    from edge_rap.cli import main

    runs = {"none": tmp_path / "none.toml", "yolo": tmp_path / "yolo.toml", "gone": tmp_path / "gone.toml"}
    for name, path in runs.items():
        path.write_text(f'[daemon]\ndetector = "{tmp_path / name if name != "none" else name}"\n')
    for _, _, model, placed in _each_profiles_detector(tmp_path, monkeypatch):
        for name, path in runs.items():
            capsys.readouterr()
            rc = main(["doctor", "--json", "--config", str(path)])
            report = json.loads(capsys.readouterr().out)
            detectors = [m["name"] for m in report["models"] if m["role"] == "detector"]
            assert detectors == ([] if name == "none" else [str(tmp_path / name)])
            assert (rc == 0) == (name != "gone"), report["missing"]
        assert main(["doctor", "--json"]) == (0 if placed else 1)  # without --config: the profile's detector


@pytest.mark.parametrize("argv", [["ask", "where is bo?"], ["listen", "--wav", "question.wav"]])
def test_detector_without_an_image_is_refused_by_ask_and_listen(tmp_path, capsys, argv):
    # ask's and listen's --detector places concepts in their --image: without one it was taken silently (exit 0),
    # a mistyped detector unsaid, where eval retrieval refuses it.
    from edge_rap.cli import main

    for detector in ("none", str(tmp_path / "no-such-detector")):
        assert main([*argv, "--detector", detector]) == 2
        assert capsys.readouterr().err == (f"edge-rap: --detector is for a question about an --image ({argv[0]} "
                                           "without one looks at no photo)\n")
