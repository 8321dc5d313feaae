"""`eval retrieval`: the layout it reads, the figures it reports, and that they follow the truth."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import unicodedata
from contextlib import ExitStack, closing

import numpy as np
import pytest

from concept_folders import CONCEPTS, refused_stat
from edge_rap.cli import main
from edge_rap.errors import EdgeRapError
from edge_rap.eval.dataset import read_dataset
from edge_rap.eval.evaluate import evaluate_localize, evaluate_retrieval
from holding import held_open
from photos import save_photo


@pytest.mark.parametrize("kind", ["retrieval", "localize"])
def test_an_entry_that_cannot_be_looked_at_is_one_line_not_a_traceback(dataset, settings, monkeypatch, kind):
    # `rocket/` listed but not searchable (mode r without x): Path.is_dir raised PermissionError on its photos
    refused_stat(monkeypatch, "rocket/a.png")
    report = (evaluate_retrieval(settings, dataset) if kind == "retrieval"
              else evaluate_localize(settings, dataset, per_frame=1))
    assert report["skipped_images"] == [f"{dataset / 'rocket' / 'a.png'}: cannot look at it (Permission denied)",
                                        "no photo in the folder of 'rocket' (left out)"]


def test_a_link_in_a_concepts_folder_to_another_concepts_folder_is_said_as_one(dataset, settings):
    # `coffee/rocket -> ../rocket`: rocket's photos, read as rocket's, were said as coffee's, not read
    (dataset / "coffee" / "rocket").symlink_to("../rocket")
    (dataset / "coffee" / "more").symlink_to(dataset / "astronaut")
    report = evaluate_retrieval(settings, dataset)
    assert report["concepts"] == 5 and report["queries"] == 10
    assert report["skipped_images"] == [
        f"{dataset / 'coffee' / 'more'}: a link to the folder of another concept, 'astronaut' (its photos are read as "
        "that concept's, not as this one's)",
        f"{dataset / 'coffee' / 'rocket'}: a link to the folder of another concept, 'rocket' (its photos are read as "
        "that concept's, not as this one's)"]


def test_a_photo_that_cannot_be_read_is_one_line(dataset, settings, monkeypatch):
    from pathlib import Path

    read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda path: (_ for _ in ()).throw(PermissionError(13, "Permission "
                        "denied")) if path.name == "b1.jpg" else read(path))
    report = evaluate_retrieval(settings, dataset)
    assert report["queries"] == 5 and len(report["skipped_images"]) == 5
    assert all(s.endswith("b1.jpg: cannot read (Permission denied)") for s in report["skipped_images"])


def test_photos_in_a_format_not_read_here_are_said_not_dropped_unsaid(dataset, settings):
    # JPEG XL and camera RAW: no photo to remember or ask about, but files a person counts
    (dataset / "coffee" / "c.JXL").write_bytes(b"\xff\x0a")
    (dataset / "rocket" / "IMG_0001.DNG").write_bytes(b"II*\x00" + bytes(60))
    report = evaluate_retrieval(settings, dataset)
    assert report["queries"] == 10 and report["skipped_images"] == [
        f"{dataset / 'coffee' / 'c.JXL'}: a JPEG XL photo, which is not read here (convert it to JPEG)",
        f"{dataset / 'rocket' / 'IMG_0001.DNG'}: a camera RAW photo, which is not read here (convert it to JPEG)"]


def test_a_concept_folder_that_cannot_be_listed_is_said_and_left_out_not_fatal(dataset, settings, monkeypatch):
    # Another account's folder on a shared drive: the whole evaluation ended with "cannot list".
    from pathlib import Path

    save_photo(dataset / "private", "moon")
    listed = Path.iterdir

    def iterdir(path):  # root is never refused, so the refusal is staged
        if path.name == "private":
            raise PermissionError(13, "Permission denied")
        return listed(path)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    report = evaluate_retrieval(settings, dataset)
    assert report["concepts"] == 5 and report["queries"] == 10
    assert report["skipped_images"] == [f"{dataset / 'private'}: cannot list (Permission denied)",
                                        "no photo in the folder of 'private' (left out)"]


@pytest.mark.parametrize("kind", ["retrieval", "localize"])
def test_a_concept_folder_without_a_photo_is_said_not_dropped_unsaid(dataset, settings, kind):
    (dataset / "empty").mkdir()
    save_photo(dataset / "nested" / "photos", "moon")  # its photos a folder further down: not read
    report = (evaluate_retrieval(settings, dataset) if kind == "retrieval"
              else evaluate_localize(settings, dataset, per_frame=1))
    assert report["skipped_images"] == ["no photo in the folder of 'empty' (left out)",
                                        f"{dataset / 'nested' / 'photos'}: a folder of 1 photo inside a concept's "
                                        "folder, not read (move them up into it)",
                                        "no photo in the folder of 'nested' (left out)"]
    if kind == "retrieval":
        assert report["concepts"] == 5 and report["queries"] == 10


@pytest.mark.parametrize("kind", ["retrieval", "localize"])
def test_a_photo_beside_the_concept_folders_is_said_not_dropped_unsaid(dataset, settings, kind):
    # `cp moon.jpg dataset/moon`, the file where its folder was meant to be: the concept was left out unsaid
    save_photo(dataset, "moon", filename="moon.jpg").rename(dataset / "moon")  # a JPEG by its content, no suffix
    (dataset / "README.md").write_text("a dataset's own notes")
    report = (evaluate_retrieval(settings, dataset) if kind == "retrieval"
              else evaluate_localize(settings, dataset, per_frame=1))
    assert report["skipped_images"] == [f"{dataset / 'moon'}: a photo beside the concept folders, in none of them "
                                        "(left out)"]


def test_report_on_an_easy_set_and_the_distractor_curve(dataset, tmp_path, settings):
    distractors = tmp_path / "distractors"
    for name in ("brick", "coins", "moon", "page", "retina", "hubble_deep_field", "cell", "logo"):
        save_photo(distractors, name)
    report = evaluate_retrieval(settings, dataset, distractors)
    assert report["concepts"] == 5 and report["queries"] == 10
    assert report["top1"] == 1.0 and report["top5"] is None  # 5 concepts: each is among the first five
    assert report["recognition_positive"] >= 0.9 and report["recognition_negative"] >= 0.95
    mean = (report["recognition_positive"] + report["recognition_negative"]) / 2
    assert report["recognition_weighted"] == pytest.approx(mean, abs=1e-4)
    curve = report["growth"]
    assert [p["distractors"] for p in curve] == [0, 1, 2, 4, 8] and curve[-1]["concepts"] == 13
    assert [p["recall@5"] is None for p in curve] == [True, False, False, False, False]
    assert all(0.0 <= p["recall@1"] <= p["recall@5"] <= 1.0 for p in curve[1:])


@pytest.mark.parametrize("kind", ["retrieval", "localize"])
def test_eval_in_a_fresh_home_exports_the_default_embedder_as_remember_does(dataset, settings, model_cache, tmp_path,
                                                                            monkeypatch, capsys, kind):
    # `EDGE_RAP_HOME=$(mktemp -d) edge-rap eval retrieval --dataset D` stopped with "the default embedder ... is not
    # prepared ...: run `edge-rap models prepare`": eval writes a memory of its own, and the first write exports
    from edge_rap.models.cache import ModelCache

    monkeypatch.setenv("EDGE_RAP_MODELS", str(tmp_path / "fresh-models"))
    exported = []
    monkeypatch.setattr(ModelCache, "prepare_default", lambda self: exported.append(
        shutil.copytree(model_cache, self.root, dirs_exist_ok=True)))
    assert main(["eval", kind, "--dataset", str(dataset), "--json"]) == 0
    assert exported == [tmp_path / "fresh-models"]
    assert json.loads(capsys.readouterr().out)["embedder"] == "efficientnet-lite0-int8"


def test_wrong_labels_give_low_recall(dataset, settings):
    # Swap the queries of two concepts: the truth changes, so the figures must drop.
    a, b = dataset / "chelsea", dataset / "rocket"
    for q in ("b0.jpg", "b1.jpg"):
        (a / q).rename(dataset / q)
        (b / q).rename(a / q)
        (dataset / q).rename(b / q)
    report = evaluate_retrieval(settings, dataset)
    assert report["top1"] == pytest.approx(0.6)


def test_cli_json_has_the_keys_scripts_read(dataset, settings, capsys):
    assert main(["eval", "retrieval", "--dataset", str(dataset), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("top1", "recognition_positive", "recognition_negative", "recognition_weighted"):
        assert isinstance(report[key], float)
    assert report["top5"] is None  # the key kept, null: 5 concepts are each among the first five


@pytest.mark.parametrize("kind", ["retrieval", "localize"])
def test_the_readme_names_every_key_of_evals_json(dataset, settings, capsys, kind):
    # Those who measure a hidden set read these keys: the README named none of them.
    from pathlib import Path

    assert main(["eval", kind, "--dataset", str(dataset), "--json"]) == 0
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    usage = readme[readme.index(f"edge-rap eval {kind} "):]
    named = set(re.findall(r"\w+", usage[:usage.index("\nedge-rap ")]))
    assert set(json.loads(capsys.readouterr().out)) - named == set()


def test_a_figure_with_nothing_behind_it_is_null_and_said_so(dataset, settings, capsys):
    # One concept has no negatives (reported 1.0) and nothing to rank against (top-1 and top-5 1.0 whatever the
    # embedder); under 6 concepts every one is among the first five (top-5 1.0)
    for name in CONCEPTS[1:]:
        shutil.rmtree(dataset / name)
    assert main(["eval", "retrieval", "--dataset", str(dataset), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["concepts"] == 1 and isinstance(report["recognition_positive"], float)
    assert [report[k] for k in ("top1", "top5", "recognition_negative", "recognition_weighted")] == [None] * 4
    assert main(["eval", "retrieval", "--dataset", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "top-1 recall none (one concept: nothing to rank)" in out
    assert "negative none (no negatives: one concept)  weighted none (no negatives)" in out


def test_localize_figures_with_nothing_behind_them_are_null_and_said_so(dataset, settings, capsys, monkeypatch):
    # a recogniser that found nothing was reported precision 1.0, and mean IoU 0.0 as if its boxes were all wrong
    from edge_rap.retrieve.retriever import Retriever
    from edge_rap.types import Recognition

    monkeypatch.setattr(Retriever, "recognize", lambda self, image, *a, **k: Recognition(image.source, (640, 480)))
    assert main(["eval", "localize", "--dataset", str(dataset), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["recall"] == 0.0 and [report[k] for k in ("precision", "mean_iou", "iou50")] == [None] * 3
    assert main(["eval", "localize", "--dataset", str(dataset)]) == 0
    assert ("recall 0.000   precision none (no concept said to be in any frame)   mean IoU none (none found)   "
            "IoU>=0.5 for none (none found) of those found") in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--dataset", "--distractors"])
def test_an_empty_folder_option_is_refused_not_taken_for_the_current_folder(dataset, settings, capsys, monkeypatch,
                                                                         option):
    monkeypatch.chdir(dataset)  # a folder of concept folders: "" would be evaluated as it
    given = {"--dataset": str(dataset), option: ""}
    assert main(["eval", "retrieval", *[a for kv in given.items() for a in kv]]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"{option} '' is empty" in err


def test_empty_or_missing_dataset_is_a_clear_error(tmp_path, settings):
    with pytest.raises(EdgeRapError, match="not a folder"):
        evaluate_retrieval(settings, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgeRapError, match="no concept subfolders"):
        evaluate_retrieval(settings, tmp_path / "empty")


def test_a_dataset_given_one_folder_too_high_names_the_folders_to_give(dataset, settings, tmp_path):
    # An archive unzipped into a folder of its own, or a train/test split: a folder of folders of concepts.
    split = tmp_path / "split"
    shutil.copytree(dataset, split / "test")
    shutil.copytree(dataset, split / "train")
    with pytest.raises(EdgeRapError) as refused:
        evaluate_retrieval(settings, split)
    assert str(refused.value) == (f"{split}: no concept subfolders with images ('test' and 'train' hold a folder "
                                  "per concept each: give one as --dataset)")
    shutil.rmtree(split / "train")
    with pytest.raises(EdgeRapError, match=r"\('test' holds a folder per concept: give it as --dataset\)$"):
        evaluate_retrieval(settings, split)


@pytest.mark.parametrize("kind", ["retrieval", "localize"])
def test_a_dataset_given_one_folder_too_high_beside_a_folder_of_photos_is_refused(dataset, tmp_path, settings, capsys,
                                                                                   kind):
    # `--dataset ../data` where one folder beside the datasets holds photos itself (group photos): that one was
    # evaluated as the only concept, and the datasets beside it said as concepts without a photo.
    data = tmp_path / "data"
    shutil.copytree(dataset, data / "objects")
    shutil.copytree(dataset, data / "people")
    save_photo(data / "group_photos", "astronaut", filename="crew.jpg")
    assert main(["eval", kind, "--dataset", str(data), "--memory", str(tmp_path / "memory")]) == 2
    err = capsys.readouterr().err
    assert err == (f"edge-rap: {data}: one level too high? 2 of its 3 folders hold folders of photos, not photos "
                   "('objects' and 'people' hold a folder per concept each: give one as --dataset)\n")
    assert not (tmp_path / "memory").exists()
    # one concept whose photos are in a folder of their own, among concepts of photos, is a concept left out
    shutil.move(str(data / "people"), str(dataset / "people"))
    assert "people" in [c.name for c in read_dataset(dataset)]


@pytest.mark.parametrize("kind,concepts", [("retrieval", CONCEPTS), ("localize", CONCEPTS),
                                           ("retrieval", CONCEPTS[:1])])
def test_a_rap_database_is_refused_naming_import_rap(tmp_path, capsys, kind, concepts):
    # RAP's layout (database.json, its photos in database/): evaluated as one concept named `database`, exit 0;
    # with a single concept, no folder held two concepts' photos: so evaluated still.
    rap = tmp_path / "rap_db"
    for name in concepts:
        save_photo(rap / "database", name, filename=f"{name}.png")
    (rap / "database.json").write_text(json.dumps({"concept_dict": {
        f"<{name}>": {"name": name, "image": [f"database/{name}.png"], "info": "", "category": ""}
        for name in concepts}}))
    assert main(["eval", kind, "--dataset", str(rap), "--memory", str(tmp_path / "memory")]) == 2
    assert capsys.readouterr().err == (f"edge-rap: {rap}: a RAP database, not a folder per concept (`edge-rap "
                                       f"import-rap {rap / 'database.json'}` remembers it)\n")
    assert not (tmp_path / "memory").exists()


@pytest.mark.parametrize("kind", ["retrieval", "localize"])
def test_unreadable_photos_are_said_and_left_out_not_fatal(dataset, settings, kind):
    # A corrupt query is skipped; a concept none of whose photos can be read is left out.
    (dataset / "coffee" / "b1.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut off")
    for photo in (dataset / "rocket").iterdir():
        photo.write_bytes(b"not a picture at all")
    report = (evaluate_retrieval(settings, dataset) if kind == "retrieval"
              else evaluate_localize(settings, dataset, per_frame=1))  # a frame per query: each is counted
    skipped = report["skipped_images"]
    assert len(skipped) == 2
    assert any("coffee/b1.jpg" in s and "corrupt" in s for s in skipped)
    assert any("rocket/b1.jpg" in s and "'rocket': left out with its 2 queries" in s for s in skipped)
    if kind == "retrieval":
        assert report["concepts"] == 4 and report["queries"] == 7
    else:
        assert report["frames"] == report["placed"] == 7  # 4 concepts' 8 queries, one of them unreadable


@pytest.mark.parametrize("kind", ["retrieval", "localize"])
def test_a_reference_that_cannot_be_read_gives_its_place_to_the_next_photo_that_reads(dataset, settings, kind):
    # An empty `0empty.jpg`, sorted first, was the reference: it failed to read and the whole concept was left out
    (dataset / "rocket" / "0empty.jpg").write_bytes(b"")
    (dataset / "rocket" / "a.png").write_bytes(b"\xff\xd8\xff\xe0 cut off")  # the next one too
    report = (evaluate_retrieval(settings, dataset) if kind == "retrieval"
              else evaluate_localize(settings, dataset, per_frame=1))
    assert [s.split(": ", 1)[0] for s in report["skipped_images"]] == [str(dataset / "rocket" / n)
                                                                      for n in ("0empty.jpg", "a.png")]
    assert all(s.endswith("(passed over: the reference of 'rocket' is b0.jpg)") for s in report["skipped_images"])
    if kind == "retrieval":
        assert report["concepts"] == 5 and report["queries"] == 9 and report["top1"] == 1.0
    else:
        assert report["frames"] == report["placed"] == 9


def test_a_memory_that_already_holds_the_concepts_is_refused_not_skipped(dataset, settings, tmp_path, monkeypatch):
    # Only unreadable photos are skipped: a second run into the same --memory must not quietly drop them all.
    evaluate_retrieval(settings, dataset, memory=tmp_path / "kept")

    def no_embedder(*args, **kwargs):  # a missing default is exported first: a minute, for a run then refused
        raise AssertionError("the embedder was opened before the memory was checked")

    monkeypatch.setattr("edge_rap.app.open_embedder", no_embedder)
    for evaluate in (evaluate_retrieval, evaluate_localize):
        with pytest.raises(EdgeRapError, match="already"):
            evaluate(settings, dataset, memory=tmp_path / "kept")


def test_a_memory_this_account_may_not_read_is_refused_in_one_line(dataset, settings, tmp_path, capsys, monkeypatch):
    # the check that a --memory holds nothing, made before the embedder opens, stopped with a PermissionError
    from refused import refuse_reading

    memory = tmp_path / "theirs"
    memory.mkdir()
    refuse_reading(monkeypatch, memory)
    assert main(["eval", "retrieval", "--dataset", str(dataset), "--memory", str(memory)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"edge-rap: {memory}: this account (") and "may not read it" in err
    assert len(err.splitlines()) == 1


def test_a_memory_with_other_concepts_is_refused_and_left_as_it_was(dataset, settings, tmp_path, capsys):
    # Its concepts would compete with the dataset's (a wrong score), and the dataset's would stay in it.
    from edge_rap.app import open_embedder, open_memory

    memory = tmp_path / "household"
    mem = open_memory(settings, open_embedder(settings), memory)
    mem.remember("bo", [str(dataset / "chelsea" / "a.png")])
    mem.close()
    for kind in ("retrieval", "localize"):
        assert main(["eval", kind, "--dataset", str(dataset), "--memory", str(memory)]) == 2
        assert "already holds 1 concept" in capsys.readouterr().err
    mem = open_memory(settings, open_embedder(settings), memory)
    assert [c.name for c in mem.concepts()] == ["bo"]
    mem.close()


@pytest.mark.parametrize("kind", ["retrieval", "localize"])
def test_eval_with_no_readable_query_is_a_clear_error(dataset, settings, kind):
    # retrieval said "each concept folder needs 2+ images" of folders that had them: none could be read
    for folder in dataset.iterdir():
        for query in folder.glob("b*.jpg"):
            query.write_bytes(b"garbage")
    evaluate = evaluate_retrieval if kind == "retrieval" else evaluate_localize
    with pytest.raises(EdgeRapError, match=r"no query image of a remembered concept could be read \(.*b1.jpg: not an"):
        evaluate(settings, dataset)


def test_eval_localize_reports_on_seeded_composites(dataset, settings, capsys):
    argv = ["eval", "localize", "--dataset", str(dataset), "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == first  # seeded: the same frames, the same figures
    assert first["placed"] == 10 and first["frames"] >= 3  # every query of the 5 concepts, 4 to a frame
    for key in ("recall", "precision", "mean_iou"):
        assert 0.0 <= first[key] <= 1.0
    assert first["recall"] > 0  # a pasted view of a remembered photo is found at least sometimes


def test_eval_localize_places_with_the_profiles_detector_as_recognize_does(dataset, settings, tmp_path, capsys,
                                                                           monkeypatch):
    # A profile naming a detector placed concepts for recognize (and run, serve, ask) while eval localize scored
    # dense matching alone: its figures were not the device's.
    profile = tmp_path / "with-detector.toml"
    profile.write_text(f'[device]\nname = "d"\n[detector]\nmodel = "{tmp_path / "no-such-detector"}"\n')
    monkeypatch.setenv("EDGE_RAP_DEVICE", str(profile))
    assert main(["eval", "localize", "--dataset", str(dataset), "--json"]) == 2
    err = capsys.readouterr().err
    assert "no-such-detector" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", "localize", "--dataset", str(dataset), "--json", "--detector", "none"]) == 0  # dense matching
    assert json.loads(capsys.readouterr().out)["detector"] is None


def test_eval_localize_takes_the_seed_and_the_concepts_per_frame(dataset, settings, capsys):
    assert main(["eval", "localize", "--dataset", str(dataset), "--json", "--per-frame", "2", "--seed", "5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["per_frame"] == 2 and report["seed"] == 5 and report["frames"] >= 5
    assert report["frame_size"] == [640, 480] and report["widths"] == [0.15, 0.6]
    assert main(["eval", "localize", "--dataset", str(dataset), "--json", "--per-frame", "9"]) == 0
    assert json.loads(capsys.readouterr().out)["per_frame"] == len(CONCEPTS)  # what the frames hold, not 9
    for bad in (["--per-frame", "0"], ["--seed", "-1"], ["--seed", "x"], ["--frame-size", "1280"],
                ["--frame-size", "10x10"], ["--widths", "0.5-0.2"], ["--widths", "0-1"], ["--widths", "a-b"]):
        with pytest.raises(SystemExit):
            main(["eval", "localize", "--dataset", str(dataset), *bad])


@pytest.mark.parametrize("option", [["--per-frame", "2"], ["--seed", "0"], ["--frame-size", "1280x960"],
                                    ["--widths", "0.2-0.45"], ["--detector", "none"]])
def test_localize_options_given_to_retrieval_are_refused_not_ignored(dataset, settings, tmp_path, capsys, option):
    with pytest.raises(SystemExit) as stop:
        main(["eval", "retrieval", "--dataset", str(dataset), *option, "--memory", str(tmp_path / "memory")])
    assert stop.value.code == 2 and f"{option[0]} is for eval localize" in capsys.readouterr().err
    assert not (tmp_path / "memory").exists()


def test_distractors_given_to_localize_are_refused_not_ignored(dataset, settings, tmp_path, capsys):
    save_photo(tmp_path / "distractors", "brick")
    with pytest.raises(SystemExit) as refused:
        main(["eval", "localize", "--dataset", str(dataset), "--distractors", str(tmp_path / "distractors"),
              "--memory", str(tmp_path / "mem")])
    assert refused.value.code == 2 and "--distractors is for eval retrieval" in capsys.readouterr().err
    assert not (tmp_path / "mem").exists()


def test_eval_localize_builds_frames_of_another_size_and_layout(dataset, settings, capsys):
    argv = ["eval", "localize", "--dataset", str(dataset), "--json", "--frame-size", "1280x960", "--widths", "0.2-0.45"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frame_size"] == [1280, 960] and report["widths"] == [0.2, 0.45] and report["frames"] == 3


def test_a_frame_counts_every_hit_but_the_background_concepts():
    from edge_rap.eval.composites import Composite, Placed
    from edge_rap.eval.evaluate import score_frame
    from edge_rap.types import Box, Concept, Hit

    def hit(name: str, box: Box) -> Hit:
        return Hit(Concept(1, name, "thing", "", 0.0, 0.0), 0.9, 0.6, box)

    frame = Composite(np.zeros((480, 640, 3), np.uint8), [Placed("bo", Box(0, 0, 100, 100))], background="mug")
    hits = [hit("bo", Box(0, 0, 100, 50)), hit("mug", Box(0, 0, 640, 480)), hit("cat", Box(200, 200, 300, 300))]
    assert score_frame(frame, hits) == (2, [0.5])  # bo found (IoU 0.5), cat is a false hit, mug not counted
    assert score_frame(Composite(frame.pixels, frame.placed), hits) == (3, [0.5])  # a texture background


@pytest.mark.parametrize("kind", ["retrieval", "localize"])
def test_every_reference_photo_is_remembered_and_only_the_rest_are_queries(dataset, settings, capsys, tmp_path, kind):
    from edge_rap.memory.store import Store

    (dataset / "coffee" / "b0.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")  # coffee's second reference
    (dataset / "rocket" / "b0.jpg").write_bytes((dataset / "rocket" / "a.png").read_bytes())  # the same photo twice
    memory = tmp_path / "memory"
    one_a_frame = ["--per-frame", "1"] if kind == "localize" else []
    assert main(["eval", kind, "--dataset", str(dataset), "--references", "2", *one_a_frame, "--json",
                 "--memory", str(memory)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["references"] == 2
    assert len(report["skipped_images"]) == 1 and "b0.jpg" in report["skipped_images"][0]
    assert "a reference of 'coffee': remembered from its other 1" in report["skipped_images"][0]
    store = Store(memory, readonly=True)
    views = {c.name: c.views for c in store.concepts()}
    store.close()
    assert views == {"chelsea": 2, "astronaut": 2, "coffee": 1, "rocket": 1, "grace_hopper": 2}
    if kind == "retrieval":
        assert report["concepts"] == 5 and report["concepts_queried"] == 5 and report["queries"] == 5
    else:
        assert report["placed"] == 5


def test_concepts_without_queries_are_said_to_only_compete(dataset, settings, capsys):
    (dataset / "coffee" / "b1.jpg").unlink()  # coffee: its two photos both remembered, nothing left to ask
    assert main(["eval", "retrieval", "--dataset", str(dataset), "--references", "2"]) == 0
    assert "5 concepts (4 with queries, the others only compete), 4 queries" in capsys.readouterr().out


@pytest.mark.parametrize("evaluate", [evaluate_retrieval, evaluate_localize])
def test_references_must_leave_a_query_and_the_memory_stays_empty(dataset, settings, capsys, tmp_path, evaluate):
    with pytest.raises(EdgeRapError, match="needs 4\\+ images"):
        evaluate(settings, dataset, references=3, memory=tmp_path / "mem")
    assert not (tmp_path / "mem").exists()  # nothing remembered: the corrected run is not refused as a full memory
    with pytest.raises(SystemExit):
        main(["eval", "retrieval", "--dataset", str(dataset), "--references", "0"])
    assert "--references" in capsys.readouterr().err


def test_a_dataset_of_no_concept_remembered_says_why_they_were_left_out_not_what_was_skipped_before(dataset,
                                                                                                       settings):
    # Its error named the first three lines of skipped_images: a photo beside the folders, a pipe, an unread photo,
    # each said before the concepts' reasons, were all it said, and no concept's reason was among them
    os.mkfifo(dataset / "0.jpg")
    for folder in dataset.iterdir():
        if folder.is_dir():
            os.mkfifo(folder / "pipe")
            for photo in folder.iterdir():
                if photo.is_file():  # its photos: refused (empty files)
                    photo.write_bytes(b"")
    with pytest.raises(EdgeRapError) as raised:
        evaluate_retrieval(settings, dataset)
    reasons = str(raised.value).removeprefix("no concept's reference photo could be remembered: ").split("; ")
    assert len(reasons) == 3
    assert all(": empty file (the reference of '" in reason for reason in reasons), reasons


@pytest.mark.parametrize("kind, said", [("retrieval", ": 1 concept, 1 query\n"),
                                         ("localize", ": 1 frame of 640x480 (0 on another concept's photo), "
                                                      "1 pasted concept (1 per frame")])
def test_a_report_of_one_says_its_counts_in_the_singular(dataset, settings, capsys, kind, said):
    for folder in dataset.iterdir():
        if folder.name != "chelsea":
            for photo in folder.iterdir():
                photo.unlink()
    (dataset / "chelsea" / "b1.jpg").unlink()
    assert main(["eval", kind, "--dataset", str(dataset)]) == 0
    assert said in capsys.readouterr().out


def test_a_folder_name_the_memory_stores_otherwise_is_still_scored_right(dataset, settings):
    # The memory stores names in NFC, stripped, without <>: the truth must use the same names.
    decomposed = unicodedata.normalize("NFD", "café")
    (dataset / "coffee").rename(dataset / decomposed)
    (dataset / "rocket").rename(dataset / "<rocket> ")
    assert {c.name for c in read_dataset(dataset)} >= {"café", "rocket"}
    report = evaluate_retrieval(settings, dataset)
    assert report["concepts"] == 5 and report["top1"] == 1.0


@pytest.mark.parametrize("kind", ["retrieval", "localize"])
def test_a_folder_the_memory_refuses_is_left_out_not_fatal(dataset, settings, kind):
    (dataset / "coffee").rename(dataset / ("coffee" * 12))  # 72 characters: over the limit of a name
    save_photo(dataset / "rocket ", "rocket", filename="a.png")  # the same name as rocket/ once stripped
    save_photo(dataset / "rocket ", "moon", filename="b.png")
    blank = np.full((200, 200, 3), 128, np.uint8)  # a lens cap: no detail to remember
    save_photo(dataset / "grey", "moon", blank, filename="a.png")
    save_photo(dataset / "grey", "moon", filename="b.png")
    (dataset / "twin").mkdir()  # its reference is astronaut's, byte for byte: one photo is one concept's
    (dataset / "twin" / "a.png").write_bytes((dataset / "astronaut" / "a.png").read_bytes())
    save_photo(dataset / "twin", "moon", filename="b.png")
    report = (evaluate_retrieval(settings, dataset) if kind == "retrieval"
              else evaluate_localize(settings, dataset, per_frame=1))
    skipped = report["skipped_images"]
    assert len(skipped) == 4
    assert any("already a photo of <astronaut>" in s and "'twin': left out with its 1 query" in s for s in skipped)
    assert any("the limit is 64" in s and "left out with its 2 queries" in s for s in skipped)
    assert any("another folder is also named 'rocket'" in s for s in skipped)
    assert any("'grey': left out with its 1 query" in s for s in skipped)
    if kind == "retrieval":
        assert report["concepts"] == 4 and report["queries"] == 8 and report["top1"] == 1.0


def test_folders_whose_names_differ_only_in_case_are_one_name_the_second_left_out(dataset, settings, capsys):
    # DOG/ beside dog/ is one concept's name to the memory: the first (sorted) keeps it, as for Unicode spellings.
    import shutil

    shutil.copytree(dataset / "coffee", dataset / "COFFEE")
    assert main(["eval", "retrieval", "--dataset", str(dataset), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["concepts"] == 5 and report["queries"] == 10 and report["top1"] == 1.0
    assert report["skipped_images"] == ["another folder is also named 'COFFEE' (the reference of 'coffee': left out "
                                        "with its 2 queries)"]


@pytest.mark.parametrize("kind", ["retrieval", "localize"])
def test_a_photo_that_cannot_be_read_at_all_is_listed_not_dropped(dataset, settings, kind):
    # A dangling link is a photo that cannot be read, like a corrupt one: said under skipped_images.
    (dataset / "coffee" / "zz.jpg").symlink_to(dataset / "nonexistent.jpg")
    report = (evaluate_retrieval(settings, dataset) if kind == "retrieval"
              else evaluate_localize(settings, dataset, per_frame=1))
    assert len(report["skipped_images"]) == 1
    assert "coffee/zz.jpg" in report["skipped_images"][0] and "no such file" in report["skipped_images"][0]
    assert report["queries" if kind == "retrieval" else "placed"] == 10


def test_a_distractor_folder_with_no_photos_is_refused_before_the_memory_is_written(dataset, settings, tmp_path):
    (tmp_path / "distractors").mkdir()
    (tmp_path / "a-file").write_bytes(b"")
    for folder, said in ((tmp_path / "distractors", "no distractor images"), (tmp_path / "nowhere", "not a folder"),
                         (tmp_path / "a-file", "not a folder")):  # a mistyped path was "no distractor images"
        with pytest.raises(EdgeRapError, match=f"^{re.escape(str(folder))}: {said}$"):
            evaluate_retrieval(settings, dataset, folder, memory=tmp_path / "mem")
        assert not (tmp_path / "mem").exists()


def test_unusable_distractors_are_listed_and_none_usable_is_an_error(dataset, settings, tmp_path, capsys):
    distractors = tmp_path / "distractors"
    save_photo(distractors, "brick")
    (distractors / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut off")
    (distractors / "empty.png").write_bytes(b"")
    report = evaluate_retrieval(settings, dataset, distractors)
    assert report["growth"][-1]["distractors"] == 1
    assert [s.split(": ")[0].rsplit("/", 1)[-1] for s in report["skipped_images"]] == ["cut.jpg", "empty.png"]
    assert all(s.endswith("(a distractor: not added)") for s in report["skipped_images"])
    (distractors / "brick.png").unlink()
    capsys.readouterr()
    assert main(["eval", "retrieval", "--dataset", str(dataset), "--distractors", str(distractors)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"edge-rap: {distractors}: no distractor image could be remembered (")


def test_a_pipe_among_the_distractors_is_said_not_opened(dataset, settings, tmp_path):
    # one named as a photo was taken for a distractor (refused as it was read), one named otherwise passed over unsaid
    distractors = tmp_path / "distractors"
    save_photo(distractors, "brick")
    for name in ("a.jpg", "pipe"):
        os.mkfifo(distractors / name)
    report = evaluate_retrieval(settings, dataset, distractors)
    assert report["growth"][-1]["distractors"] == 1
    assert report["skipped_images"] == [f"{distractors / 'a.jpg'}: a pipe, not a photo (not opened)",
                                        f"{distractors / 'pipe'}: a pipe, not a photo (not opened)"]


def test_a_run_that_fails_after_remembering_leaves_a_new_or_empty_memory_as_it_was(dataset, settings, tmp_path):
    # The dataset is remembered, then no distractor can be: the corrected run must not be refused as a full memory.
    distractors = tmp_path / "distractors"
    distractors.mkdir()
    (distractors / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut off")
    (tmp_path / "empty").mkdir()
    for memory in (tmp_path / "new", tmp_path / "empty"):
        with pytest.raises(EdgeRapError, match="no distractor image could be remembered"):
            evaluate_retrieval(settings, dataset, distractors, memory=memory)
        assert list(memory.iterdir()) == [] if memory.name == "empty" else not memory.exists()
        assert evaluate_retrieval(settings, dataset, memory=memory)["concepts"] == len(CONCEPTS)


def _interrupted_after(n: int):
    """A progress wrapper that is Ctrl-C'd as its (n+1)th item comes."""
    def progress(items):
        for k, item in enumerate(items):
            if k == n:
                raise KeyboardInterrupt
            yield item

    return progress


@pytest.mark.parametrize("evaluate", [evaluate_retrieval, evaluate_localize])
def test_an_interrupted_run_leaves_no_half_remembered_dataset_in_a_new_memory(dataset, settings, tmp_path, evaluate):
    with pytest.raises(KeyboardInterrupt):
        evaluate(settings, dataset, memory=tmp_path / "mem", progress=_interrupted_after(2))
    assert not (tmp_path / "mem").exists()
    assert evaluate(settings, dataset, memory=tmp_path / "mem")  # the run again, not refused


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_sigterm_or_sighup_leaves_a_new_memory_as_ctrl_c_does(dataset, settings, tmp_path, monkeypatch, capsys,
                                                               stop_signal, signum, code):
    # `kill`, `timeout` or a closed terminal ended the process past the cleanup: half a dataset stayed in --memory
    from edge_rap import cli

    def stopped_at_the_third(items):
        for k, item in enumerate(items):
            if k == 2:
                stop_signal(signum)
            yield item

    monkeypatch.setattr(cli, "_progress", lambda label: stopped_at_the_third)
    memory = tmp_path / "mem"
    assert main(["eval", "retrieval", "--dataset", str(dataset), "--memory", str(memory)]) == code
    assert capsys.readouterr().err == f"edge-rap: stopped by {signal.Signals(signum).name}\n"
    assert not memory.exists()


def test_an_interrupted_run_leaves_a_memory_that_was_there_alone(dataset, settings, tmp_path):
    from edge_rap.app import open_embedder, open_memory

    memory = tmp_path / "household"
    mem = open_memory(settings, open_embedder(settings), memory)
    mem.remember("bo", [str(dataset / "chelsea" / "a.png")])
    mem.forget("bo")  # a memory with no concept: eval takes it, and must not delete its files when cut short
    mem.close()
    before = sorted(p.name for p in memory.iterdir())
    with pytest.raises(KeyboardInterrupt):
        evaluate_retrieval(settings, dataset, memory=memory, progress=_interrupted_after(2))
    assert sorted(p.name for p in memory.iterdir()) == before


def test_an_interrupted_run_leaves_what_another_process_remembered_meanwhile(dataset, settings, tmp_path):
    # The folder was empty when eval looked, then a `remember` wrote there while eval ran: emptying it as eval's
    # own deleted that concept (and the memory's database with it).
    from edge_rap.app import open_embedder, open_memory

    memory, bo = tmp_path / "shared", save_photo(tmp_path / "other", "moon")
    memory.mkdir()

    def another_process_then_ctrl_c(items):
        for k, item in enumerate(items):
            if k == 1:
                with closing(open_memory(settings, open_embedder(settings), memory)) as other:
                    other.remember("bo", [str(bo)])
            if k == 2:
                raise KeyboardInterrupt
            yield item

    with pytest.raises(KeyboardInterrupt):
        evaluate_retrieval(settings, dataset, memory=memory, progress=another_process_then_ctrl_c)
    with closing(open_memory(settings, open_embedder(settings), memory, readonly=True)) as mem:
        assert "bo" in {c.name for c in mem.concepts()}


def test_an_interrupted_run_leaves_a_memory_another_process_opened_meanwhile(dataset, settings, tmp_path):
    # `serve` or `run` started on the folder while eval wrote into it: its files were deleted from under it.
    memory = tmp_path / "shared"
    memory.mkdir()

    with ExitStack() as others:
        def opened_by_another_process_then_ctrl_c(items):
            for k, item in enumerate(items):
                if k == 2:
                    others.enter_context(held_open(memory))
                    raise KeyboardInterrupt
                yield item

        with pytest.raises(KeyboardInterrupt):
            evaluate_retrieval(settings, dataset, memory=memory, progress=opened_by_another_process_then_ctrl_c)
    assert (memory / "memory.sqlite").exists()


def test_every_query_is_pasted_once_and_a_concept_once_per_frame(tmp_path):
    from edge_rap.eval.dataset import ConceptFolder
    from edge_rap.eval.evaluate import localize_frames

    def folder(name, count):
        for k in range(count):
            save_photo(tmp_path / name, name, filename=f"{k}.png")
        files = sorted((tmp_path / name).iterdir())
        return ConceptFolder(name, files[:1], files[1:])

    concepts = [folder("chelsea", 7), folder("coffee", 2), folder("rocket", 2)]  # 6 queries of one concept
    frames = localize_frames(concepts, per_frame=3, seed=0, skipped=[])
    placed = [[p.name for p in f.placed] for f in frames]
    assert all(len(set(names)) == len(names) for names in placed)
    assert sorted(n for names in placed for n in names) == ["chelsea"] * 6 + ["coffee", "rocket"]


def test_retrieval_reads_each_query_photo_in_the_progress_bar_and_holds_one_at_a_time(dataset, settings,
                                                                                    monkeypatch):
    # Every query was decoded before the first was embedded, outside the progress bar: 86 photos of 12 megapixels
    # held 1 GB and took 27 s with nothing shown.
    import weakref

    from edge_rap.eval import evaluate

    read, held, shown = [], [], [0]

    def reading(path, *args, **kwargs):
        held.append(sum(r() is not None for r in read))
        photo_file = real_read(path, *args, **kwargs)
        read.append(weakref.ref(photo_file.image.pixels))
        assert len(read) <= shown[0], "a query photo read before the progress bar came to it"
        return photo_file

    def progress(items):
        for item in items:
            shown[0] += 1
            yield item

    real_read = evaluate.read_image_file
    monkeypatch.setattr(evaluate, "read_image_file", reading)
    report = evaluate_retrieval(settings, dataset, progress=progress)
    assert report["queries"] == len(read) == 10 and max(held) <= 1


def test_localize_builds_each_frame_as_the_progress_bar_comes_to_it(dataset, settings, monkeypatch):
    # Every frame was composed before the first was recognised: each photo read with nothing shown.
    from edge_rap.eval import evaluate
    from edge_rap.eval.composites import Composite

    reads, read_by_frame = [0], []

    def reading(path, *args, **kwargs):
        reads[0] += 1
        return real_read(path, *args, **kwargs)

    def progress(items):
        for item in items:
            if isinstance(item, Composite):
                read_by_frame.append(reads[0])
            yield item

    real_read = evaluate.read_image_file
    monkeypatch.setattr(evaluate, "read_image_file", reading)
    report = evaluate_localize(settings, dataset, progress=progress)
    assert report["frames"] == len(read_by_frame) >= 2 and report["placed"] == 10
    assert read_by_frame[0] < read_by_frame[-1] <= reads[0]


@pytest.mark.parametrize("per_frame", [1, 3, 4])
def test_localizes_progress_bar_is_told_how_many_frames_there_are(dataset, settings, per_frame):
    # Made one at a time, the frames were handed to the bar as a generator: it showed "7item [00:31]" where it had
    # shown "7/12" and the time left.
    totals, shown = [], []

    def progress(items):
        totals.append(len(items))  # (tqdm's total)
        shown.append(0)
        for item in items:
            shown[-1] += 1
            yield item

    report = evaluate_localize(settings, dataset, per_frame=per_frame, progress=progress)
    assert totals[-1] == shown[-1] == report["frames"]


def test_localize_lets_go_of_a_frames_photos_before_it_is_recognised(dataset, settings, monkeypatch):
    # Made one at a time, each frame's photos (up to five: 180 MB of 12-megapixel photos) were still held, by the
    # generator making them, while it was recognised.
    import gc
    import weakref

    from edge_rap.eval import evaluate
    from edge_rap.eval.composites import Composite

    read, held = [], []

    def reading(path, *args, **kwargs):
        photo_file = real_read(path, *args, **kwargs)
        read.append(weakref.ref(photo_file.image.pixels))
        return photo_file

    def progress(items):
        for item in items:
            if isinstance(item, Composite):
                gc.collect()
                held.append(sum(r() is not None for r in read))
            yield item

    real_read = evaluate.read_image_file
    monkeypatch.setattr(evaluate, "read_image_file", reading)
    report = evaluate_localize(settings, dataset, progress=progress)
    assert len(held) == report["frames"] >= 2 and read and held == [0] * len(held)


def test_localize_frames_length_is_their_count_or_a_bound_where_a_photo_is_unreadable(tmp_path):
    # The length (the progress bar's total) is counted by replaying the frames' grouping without reading a photo: it
    # is the frames made for any seed, concepts per frame and count of concepts, and at most them where one of the
    # photos is unreadable (left out, its place in a frame taken by a photo waiting for the next)
    import random

    from edge_rap.eval.dataset import ConceptFolder
    from edge_rap.eval.evaluate import localize_frames

    save_photo(tmp_path, CONCEPTS[0], filename="photo.png")
    photo, junk = tmp_path / "photo.png", tmp_path / "junk.jpg"
    junk.write_bytes(b"no JPEG")
    for trial in range(24):
        rng = random.Random(trial)
        unreadable = trial % 2 == 1
        concepts = [ConceptFolder(f"c{k}", [photo], [junk if unreadable and rng.random() < 0.3 else photo
                                                     for _ in range(rng.randint(0, 5))])
                    for k in range(rng.choice([1, 2, 3, 5, 7]))]
        per_frame = rng.choice([1, 2, 3, 4, 6])
        frames = localize_frames(concepts, per_frame, rng.randint(0, 1000), [])
        made = sum(1 for _ in frames)
        if any(junk in c.queries for c in concepts):
            assert made <= len(frames)
        else:
            assert made == len(frames), (trial, per_frame)
