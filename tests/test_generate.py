"""Generate without llama.cpp: the RAP prompt, task choice, the name guard, sentences, template answers
(`edge-rap ask` with no VLM), the [vlm] profile, and `models pull` (offline error, files put by hand)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from scenes import noise, save, scene

from edge_rap.config import load_profile
from edge_rap.errors import EdgeRapError
from edge_rap.generate.chat import GEMMA3_TEMPLATE, PLAIN_TEMPLATE, ChatTemplate
from edge_rap.generate.names import REMOVED, NameGuard
from edge_rap.generate.narrate import BRIEF_CHARS, narrate, where
from edge_rap.generate.prompt import (MEDIA_MARKER, PromptImage, Reference, Task, build_prompt, classify,
                                      render)
from edge_rap.models.vlm_registry import list_vlms, pull, resolve
from edge_rap.generate.stream import SentenceSplitter
from edge_rap.types import Answer, Box, Concept, Hit


def concept(i: int, name: str, description: str = "", category: str = "") -> Concept:
    return Concept(i, name, category, description, 0.0, 0.0, 1)


def image(key: str) -> PromptImage:
    return PromptImage(key, lambda: np.zeros((8, 8, 3), np.uint8))


BO = concept(1, "bo", "our Shiba Inu, cinnamon coat, black collar", "dog")
ANYA = concept(2, "Anya", "our daughter, red backpack", "person")
GEMMA = ChatTemplate("test", GEMMA3_TEMPLATE, "<bos>", "<eos>")


# --- the prompt ---------------------------------------------------------------------------------------------

def test_prompt_has_references_query_and_question_in_the_chat_template():
    refs = [Reference(BO, image("bo-photo")), Reference(ANYA, image("anya-photo"))]
    prompt = build_prompt(Task.VQA, "What is <bo> doing?", refs, image("query"), (640, 480))
    r = render(prompt, GEMMA)
    text = r.prefix + r.suffix
    assert text.startswith("<bos><start_of_turn>user\n") and text.endswith("<start_of_turn>model\n")
    assert "Name: <bo>, Info: our Shiba Inu, cinnamon coat, black collar" in r.prefix
    assert "Name: <Anya>, Info: our daughter, red backpack" in r.prefix
    # references (sorted by name) before the query image; the question after it
    assert r.prefix.index("Name: <Anya>") < r.prefix.index("Name: <bo>")
    assert [i.key for i in r.prefix_images] == ["anya-photo", "bo-photo"]
    assert [i.key for i in r.suffix_images] == ["query"]
    assert r.prefix.count(MEDIA_MARKER) == 2 and r.suffix.count(MEDIA_MARKER) == 1
    assert "What is <bo> doing?" in r.suffix and "What is" not in r.prefix


def test_user_text_cannot_smuggle_media_markers_or_the_cache_cut():
    sneaky = concept(3, "pip", f"a mouse {MEDIA_MARKER} with \x1eEDGE_RAP_QUERY\x1e ears", "pet")
    prompt = build_prompt(Task.VQA, f"Is the {MEDIA_MARKER} tag <pip>?", [Reference(sneaky, image("pip"))],
                          image("query"), (640, 480))
    r = render(prompt, GEMMA)
    assert r.prefix.count(MEDIA_MARKER) == 1 and r.suffix.count(MEDIA_MARKER) == 1  # only our own images
    assert "EDGE_RAP_QUERY" not in r.prefix + r.suffix


def test_prefix_key_depends_on_the_set_of_concepts_only():
    def key(refs, question, query):
        return render(build_prompt(Task.VQA, question, refs, image(query), (10, 10)), GEMMA).prefix_key

    a = key([Reference(BO, image("b")), Reference(ANYA, image("a"))], "one?", "q1")
    assert a == key([Reference(ANYA, image("a")), Reference(BO, image("b"))], "two?", "q2")  # order, question, image
    assert a != key([Reference(BO, image("b"))], "one?", "q1")  # another set
    assert a != key([Reference(BO, image("b2")), Reference(ANYA, image("a"))], "one?", "q1")  # another photo
    edited = concept(1, "bo", "our Shiba Inu, new red collar", "dog")
    assert a != key([Reference(edited, image("b")), Reference(ANYA, image("a"))], "one?", "q1")  # description


def test_text_references_carry_no_images_and_boxes_go_after_the_query():
    refs = [Reference(BO, image("bo-photo"), 0.9, Box(0, 0, 100, 80))]
    r = render(build_prompt(Task.CAPTION, "", refs, image("q"), (400, 300), text_only=True), GEMMA)
    assert r.prefix_images == () and MEDIA_MARKER not in r.prefix
    assert "1. Name: <bo>, Info: our Shiba Inu" in r.prefix
    assert "<bo> [0, 0, 100, 80]" in r.suffix and "400 x 300" in r.suffix
    assert "Give a personalised caption of this image." in r.suffix


def test_templates_without_system_role_or_string_content_still_render():
    refuses_system = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}"
                      "{% endif %}{{ m['content'] }}{% endfor %}")
    parts_only = "{% for m in messages %}{% for p in m['content'] %}{{ p['text'] }}{% endfor %}{% endfor %}"
    for text in (refuses_system, parts_only, PLAIN_TEMPLATE):
        r = render(build_prompt(Task.VQA, "What is this?", [Reference(BO, image("b"))], image("q"), (5, 5)),
                   ChatTemplate("t", text))
        assert r.prefix.count(MEDIA_MARKER) == 1 and r.suffix.count(MEDIA_MARKER) == 1
        assert "Name: <bo>" in r.prefix and "What is this?" in r.suffix


BROKEN_TEMPLATES = {
    "syntax": "{% for m in messages %}{{ m['content'] }}",
    "unknown-tag": "{% frobnicate %}",
    "division": "{{ 1 / 0 }}",
    "undefined-call": "{{ messages.nothing.here() }}",
    "raises": "{{ raise_exception('roles must alternate\nuser/assistant') }}",
    "drops-the-prompt": "{{ bos_token }}hello",
    "sandbox": "{{ ''.__class__.__mro__ }}{{ messages[0]['content'] }}",
    "deep-recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
}


@pytest.mark.parametrize("kind", list(BROKEN_TEMPLATES))
def test_a_chat_template_that_will_not_render_is_one_line(kind):
    prompt = build_prompt(Task.VQA, "What is this?", [Reference(BO, image("b"))], image("q"), (5, 5))
    with pytest.raises(EdgeRapError, match="chat template") as e:
        render(prompt, ChatTemplate("gguf", BROKEN_TEMPLATES[kind]))
    assert "\n" not in str(e.value)


def test_fallback_template_by_architecture():
    assert ChatTemplate.for_model({"general.architecture": "gemma3"}).source == "fallback:gemma3"
    assert ChatTemplate.for_model({"general.architecture": "xyz"}).source == "fallback:plain"
    assert ChatTemplate.for_model({"tokenizer.chat_template": "{{ 1 }}"}).source == "gguf"


@pytest.mark.parametrize("question, has_image, task", [
    ("", True, Task.CAPTION),
    ("Give a personalised caption of this image", True, Task.CAPTION),
    ("Describe this photo in detail.", True, Task.DESCRIBE),
    ("Is <bo> in this image?", True, Task.RECOGNIZE),
    ("Is bo here?", True, Task.RECOGNIZE),
    ("Is <mr. whiskers> here?", True, Task.RECOGNIZE),  # any name a concept may have, in brackets or not
    ("Is Mr. Whiskers here?", True, Task.RECOGNIZE),
    ("Is <O'Neil> here?", True, Task.RECOGNIZE),
    ("Are <bo> and <anya> here?", True, Task.RECOGNIZE),
    ("Is Bo's ball here?", True, Task.VQA),  # about the ball, not Bo
    ("Is there a dog in this picture?", True, Task.VQA),  # no one named: not "I don't know that name"
    ("Can you see anyone in the photo?", True, Task.VQA),
    ("Are there any cats here?", True, Task.VQA),
    ("Is max in this image?", True, Task.RECOGNIZE),  # a name, if not one the memory holds
    ("What is <bo> doing?", True, Task.VQA),
    ("What colour is <bo>'s collar?", False, Task.TEXT),
])
def test_classify(question, has_image, task):
    assert classify(question, has_image) is task


# --- names and sentences -----------------------------------------------------------------------------------

def filter_names(text: str, allowed, known=()) -> tuple[str, list[str]]:
    """A whole answer through a NameGuard: (safe text, flagged names)."""
    guard = NameGuard.of(allowed, known)
    safe = guard.feed(text) + guard.flush()
    return safe, guard.flagged


def test_invented_names_are_removed_and_flagged():
    text, flagged = filter_names("<bo> sleeps next to <Max> and <anya>. x < 3 and y > 2", ["bo", "Anya"],
                                 ["bo", "Anya", "mug"])
    assert text == f"<bo> sleeps next to {REMOVED} and <anya>. x < 3 and y > 2"
    assert flagged == ["Max"]
    text, flagged = filter_names("I see the mug.", ["bo"], ["bo", "mug"])
    assert text == "I see the mug." and flagged == ["mug"]  # a bare remembered name: kept, flagged
    text, flagged = filter_names("I see <tea pot> by the red mug.", ["teapot"], ["teapot", "red mug"])
    assert text == "I see <tea pot> by the red mug." and flagged == ["red mug"]  # <teapot> said alike


def test_a_name_the_model_wrote_without_its_accents_or_emoji_is_the_concepts():
    # a model wrote "<Mochi>" for <Mochi 🐱> and "<Zoe>" for <Zoë>: both were shown as [unrecognised]
    text, flagged = filter_names("<Mochi> sleeps by <Jose's mug>; <Zoe> and <Max> left.", ["Mochi 🐱", "José's mug",
                                                                                        "Zoë"], ["Bo"])
    assert (text, flagged) == (f"<Mochi 🐱> sleeps by <José's mug>; <Zoë> and {REMOVED} left.", ["Max"])
    assert filter_names("<Zoe>", ["Zoë", "Zoé"]) == (REMOVED, ["Zoe"])  # written alike of two: neither is meant
    # a keyboard's "´" for the apostrophe is one (name_key): <Zoë´s mug> written "<Zoe's mug>" was removed
    assert filter_names("<Zoe's mug>", ["Zoë\u00b4s mug"]) == ("<Zoë\u00b4s mug>", [])


def test_a_name_without_accents_that_another_remembered_concept_holds_is_not_made_the_allowed_one():
    # <Zoe> and <Zoë> are two people: the model's "<Zoe>" (not in view) was shown as <Zoë>, unflagged
    assert filter_names("<Zoe> is at the door.", ["Zoë"], ["Zoë", "Zoe"]) == (f"{REMOVED} is at the door.", ["Zoe"])
    assert filter_names("<Zoe>", ["Zoë"], ["Zoë", "Zoé"]) == (REMOVED, ["Zoe"])  # could be <Zoé>
    assert filter_names("<Zoe>", ["Zoë"], ["ZOË", "Bo"]) == ("<Zoë>", [])


def test_name_guard_on_a_stream_holds_back_only_open_brackets():
    guard = NameGuard.of(["bo"], ["bo", "anya"])
    out = [guard.feed(p) for p in ["I see <", "b", "o> and <an", "ya> there"]]
    assert out == ["I see ", "", "<bo> and ", f"{REMOVED} there"]
    assert guard.flush() == "" and guard.flagged == ["anya"]


def test_an_answer_cut_within_an_invented_name_does_not_show_it():
    # cut at max_tokens within "<Rex": the guard held it back as a name still arriving, then let it out at the end
    guard = NameGuard.of(["bo", "anya"], ["bo", "anya"])
    assert guard.feed("<bo> plays with <Rex") == "<bo> plays with "
    assert guard.flush() == REMOVED and guard.flagged == ["Rex"]
    guard = NameGuard.of(["bo", "anya"])
    assert guard.feed("<bo> plays with <An") + guard.flush() == "<bo> plays with <An"  # an allowed name, cut
    assert guard.flagged == []
    guard = NameGuard.of(["bo"])
    assert guard.feed("x <") + guard.flush() == "x <" and guard.flagged == []  # no name yet: nothing to judge


def test_sentences_are_emitted_as_they_end():
    got = []
    s = SentenceSplitter(got.append)
    for piece in ["Hello <bo>", ". It is 3", ".5 m away, e.g. near", " the sofa! And"]:
        s.feed(piece)
    assert got == ["Hello <bo>.", "It is 3.5 m away, e.g. near the sofa!"]
    s.feed(" then")
    s.flush()
    assert got[-1] == "And then"


# --- template answers ---------------------------------------------------------------------------------------

def hit(c: Concept, score=0.9, threshold=0.5, box=Box(0, 0, 100, 100), mentioned=False) -> Hit:
    return Hit(c, score, threshold, box, mentioned)


def test_template_names_exactly_the_recognised_concepts_with_descriptions():
    hits = [hit(BO, box=Box(0, 0, 30, 100))]  # what retrieval decided is present: not Anya
    text = narrate(Task.CAPTION, hits, [], (100, 100))
    assert text == "I can see <bo> on the left — our Shiba Inu, cinnamon coat, black collar."
    assert narrate(Task.CAPTION, [], [], (100, 100)) == "I don't see any of the household's concepts in this image."
    assert "<Anya>" not in narrate(Task.VQA, hits, [], (100, 100))
    assert narrate(Task.RECOGNIZE, hits, [ANYA], (100, 100)) == "No, I don't see <Anya> in this image."
    assert narrate(Task.RECOGNIZE, hits, [BO], (100, 100)).startswith("Yes, <bo> is in this image, on the left")
    assert narrate(Task.TEXT, [], [BO], None).startswith(
        "Here is what I was told about <bo>: our Shiba Inu, cinnamon coat, black collar.")
    assert where(Box(0, 0, 100, 100), (100, 100)) == "" and where(Box(70, 0, 100, 9), (100, 100)) == "on the right"


def test_where_a_concept_is_seen_its_description_is_said_briefly_and_whole_when_asked_about():
    # An arrival said a 2000-character description in full, each time: minutes of speech at the door.
    story = "Our old cat, found in the rain in 2015. " + "She likes the sofa and the sun. " * 60
    cat = concept(9, "mochi", story)
    line = narrate(Task.CAPTION, [hit(cat)], [], (100, 100))
    assert line == "I can see <mochi> — Our old cat, found in the rain in 2015."
    assert narrate(Task.RECOGNIZE, [hit(cat)], [cat], (100, 100)) == (
        "Yes, <mochi> is in this image — Our old cat, found in the rain in 2015.")
    assert story.strip().rstrip(".") in narrate(Task.TEXT, [], [cat], None)  # "tell me about her": all of it
    one_long_sentence = concept(10, "rug", "a rug " + "with red and blue stripes, " * 20 + "from grandma")
    said = narrate(Task.CAPTION, [hit(one_long_sentence)], [], (100, 100))
    assert said.endswith("….")  # cut at a word, and said so
    assert len(said) < len("I can see <rug> — .") + BRIEF_CHARS + 2 and "stripes" in said


def test_a_brief_description_does_not_end_at_an_abbreviations_full_stop():
    # "Mr. Whiskers, our grey cat." was said "I can see <whiskers> — Mr."
    for description, brief in [("Mr. Whiskers, our grey cat. Likes tuna.", "Mr. Whiskers, our grey cat"),
                               ("A St. Bernard, approx. 60 kg. Drools.", "A St. Bernard, approx. 60 kg"),
                               ("Mugs like this one, e.g. the blue. Chipped.", "Mugs like this one, e.g. the blue"),
                               ("By J. Smith. Signed.", "By J. Smith"), ("Our dog. Mr. Bo to guests.", "Our dog"),
                               ("Mochi (aka. the boss), 12 yrs. old. Naps.", "Mochi (aka. the boss), 12 yrs. old")]:
        assert narrate(Task.CAPTION, [hit(concept(9, "bo", description))], [], (100, 100)) == (
            f"I can see <bo> — {brief}.")


def test_a_description_that_ends_in_an_exclamation_or_a_question_gets_no_full_stop_after_it():
    # "Our puppy! Loves walks." was said "I can see <bo> — Our puppy!.", and asked about, "...: Who's a good boy?."
    puppy = concept(9, "bo", "Our puppy! Loves walks.")
    assert narrate(Task.CAPTION, [hit(puppy)], [], (100, 100)) == "I can see <bo> — Our puppy!"
    assert narrate(Task.RECOGNIZE, [hit(puppy)], [puppy], (100, 100)) == "Yes, <bo> is in this image — Our puppy!"
    good = concept(10, "rex", "Who's a good boy?")
    assert narrate(Task.TEXT, [], [good], None).startswith("Here is what I was told about <rex>: Who's a good boy? ")
    assert narrate(Task.CAPTION, [hit(good)], [], (100, 100)) == "I can see <rex> — Who's a good boy?"


def test_a_brief_description_ends_at_the_full_stop_of_a_script_written_without_spaces():
    # A Chinese description was said whole up to 120 characters: "。" is followed by no space
    cat = concept(9, "mimi", "我们的猫，叫咪咪。" + "她喜欢在阳光下睡觉。" * 20)
    assert narrate(Task.CAPTION, [hit(cat)], [], (100, 100)) == "I can see <mimi> — 我们的猫，叫咪咪."
    dog = concept(10, "moti", "हमारा कुत्ता। उसे घूमना पसंद है।")
    assert narrate(Task.CAPTION, [hit(dog)], [], (100, 100)) == "I can see <moti> — हमारा कुत्ता."


def test_a_name_not_known_lists_five_known_and_counts_the_rest():
    household = [concept(i, f"c{i}") for i in range(1, 8)]
    assert narrate(Task.TEXT, [], [], None, household) == (
        "I don't know who or what you mean. I know <c1>, <c2>, <c3>, <c4>, <c5> and 2 more.")
    assert narrate(Task.TEXT, [], [], None, household[:2]).endswith("I know <c1>, <c2>.")


def test_a_question_about_one_not_in_view_or_not_known_says_so_first():
    # "What is <Anya> doing?" must not be answered with what <bo> is doing as if that were the answer.
    from edge_rap.retrieve import unknown_names

    hits = [hit(BO, box=Box(0, 0, 30, 100))]
    text = narrate(Task.VQA, hits, [ANYA], (100, 100))
    assert text.startswith("I don't see <Anya> in this image. I can see <bo> on the left")
    assert narrate(Task.VQA, [], [ANYA], (100, 100)) == (
        "I don't see <Anya> in this image. Nor any of the household's other concepts.")
    assert narrate(Task.VQA, hits, [BO], (100, 100)).startswith("I can see <bo>")  # asked about, and there
    unknown = unknown_names("What is <nobody> doing with <BO>?", [BO, ANYA])
    assert unknown == ["nobody"]
    assert unknown_names("Is <B_O> with <ａｎｙａ>?", [BO, ANYA]) == []  # said alike: the names held
    assert narrate(Task.DESCRIBE, hits, [BO], (100, 100), unknown=unknown).startswith(
        "I don't know anyone or anything called <nobody>. I can see <bo>")


def test_a_name_not_known_beside_a_known_one_is_said_in_every_task():
    # "What does <max> eat, and where is <bo>'s bowl?": <max> is not passed over in silence
    assert narrate(Task.TEXT, [], [BO], None, [BO, ANYA], ["max"]).startswith(
        "I don't know anyone or anything called <max>. Here is what I was told about <bo>")
    assert narrate(Task.RECOGNIZE, [], [BO], (100, 100), [BO, ANYA], ["max"]) == (
        "I don't know anyone or anything called <max>. No, I don't see <bo> in this image.")


def test_answer_json_keys():
    a = Answer("hi", "template", "caption", [hit(BO)], [], ttft_s=None)
    out = a.to_json()
    assert {"answer", "concepts", "mode", "model", "ttft_s", "tokens_per_s"} <= set(out)
    assert out["concepts"] == [{"name": "bo", "score": 0.9, "box": [0, 0, 100, 100]}]
    vlm = Answer("hi", "vlm", "recognize", [hit(BO)], [], model="m", device="cpu", ttft_s=0.1, cache={"prefix": "warm"},
                 verdict={"name": "bo", "present": True})
    assert list(out) == list(vlm.to_json())  # a script reads the same keys whichever mode answered
    assert out["device"] is None and out["verdict"] is None and out["cache"] is None



def test_ask_in_template_mode(run, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    bo = save(photos / "bo.png", scene(1, 320, 240))
    mug = save(photos / "mug.png", scene(2, 320, 240))
    assert run("remember", "bo", bo, "--description", "our Shiba Inu, cinnamon coat, black collar")[0] == 0
    assert run("remember", "mug", mug, "--description", "the blue mug")[0] == 0

    rc, out, err = run("ask", "--image", bo, "--json")
    assert rc == 0, err
    answer = json.loads(out)
    assert answer["mode"] == "template" and answer["model"] is None
    assert answer["ttft_s"] is None and answer["tokens_per_s"] is None
    assert [c["name"] for c in answer["concepts"]] == ["bo"]
    assert answer["answer"] == "I can see <bo> — our Shiba Inu, cinnamon coat, black collar."

    rc, out, _ = run("ask", "--image", save(photos / "noise.png", noise(3, 300)), "--json")
    assert rc == 0 and json.loads(out)["concepts"] == []
    assert json.loads(out)["answer"] == "I don't see any of the household's concepts in this image."

    rc, out, err = run("ask", "Is <mug> in this image?", "--image", bo)
    assert rc == 0 and out.startswith("[template mode: no VLM] No, I don't see <mug>")
    assert "retrieval: <mug> is not in the image" in err

    rc, out, _ = run("ask", "What colour is <bo>'s collar?", "--stream")
    assert rc == 0 and out.startswith("[template mode: no VLM] Here is what I was told about <bo>: our Shiba Inu")

    rc, out, err = run("ask")
    assert rc == 2 and "needs a QUESTION" in err
    for option in ("--image", "--vlm", "--mmproj"):  # an unset variable: refused, not answered without it
        rc, out, err = run("ask", "Is <bo> in this image?", option, "", *(["--vlm", "m.gguf"] * (option == "--mmproj")))
        assert rc == 2 and out == "" and f"{option} '' is empty" in err
    for bad in ("0", "-3"):  # both used to be taken: -3 as 1 token, 0 as the profile's default
        rc, out, err = run("ask", "What colour is <bo>'s collar?", "--max-tokens", bad)
        assert rc == 2 and out == "" and f"--max-tokens must be 1 or more, not {bad}" in err


def test_ask_where_without_an_image_answers_from_the_sightings_as_the_voice_and_the_api_do(run, tmp_path, settings):
    """`ask "Where is Bo?"` used to answer with Bo's description while `listen` and /api/ask said where Bo was
    last seen: the household got two different answers to one question."""
    import time

    from edge_rap.daemon.events import EventLog
    from edge_rap.types import Event

    photos = tmp_path / "photos"
    photos.mkdir()
    assert run("remember", "bo", save(photos / "bo.png", scene(1, 320, 240)), "--description", "our Shiba Inu")[0] == 0
    assert run("remember", "mug", save(photos / "mug.png", scene(2, 320, 240)), "--description", "the blue mug")[0] == 0
    EventLog(settings.memory).add(Event("left", "bo", "den", 60.0, time.time() - 245))

    rc, out, err = run("ask", "Where is Bo?", "--json")
    assert rc == 0, err
    answer = json.loads(out)
    assert answer["answer"] == "I last saw <bo> on the den camera 4 minutes ago."
    assert (answer["mode"], answer["task"], [c["name"] for c in answer["concepts"]]) == ("events", "where", ["bo"])
    rc, out, _ = run("ask", "Is the mug home?")
    assert (rc, out) == (0, "I haven't seen <mug> yet.\n")
    rc, out, _ = run("ask", "What colour is Bo's collar?")  # about Bo, not where Bo is: still the description
    assert rc == 0 and out.startswith("[template mode: no VLM] Here is what I was told about <bo>: our Shiba Inu")


def test_ask_about_the_scene_without_an_image_says_it_has_no_picture(run, tmp_path):
    """`ask "What do you see?"` with no --image said "I don't know who or what you mean", where the voice and the
    API say they have no camera picture: the user was not told that the picture was what was missing."""
    photos = tmp_path / "photos"
    photos.mkdir()
    assert run("remember", "bo", save(photos / "bo.png", scene(1, 320, 240)))[0] == 0
    for question in ("What do you see?", "What is on the table?"):
        rc, out, err = run("ask", question)
        assert (rc, out) == (0, "I have no camera picture to look at right now.\n")
        assert err == "edge-rap: a question about a picture needs --image FRAME\n"


def test_ask_without_a_picture_says_alike_in_text_and_json_what_answered_and_loads_no_vlm(run, tmp_path):
    """`ask "What do you see?" --vlm M --json` said `"mode": "template"` where the text had no template label, and
    loaded the VLM (seconds on a Jetson) for an answer that needs none: a file that no VLM loads from is not read."""
    assert run("remember", "bo", save(tmp_path / "bo.png", scene(1, 320, 240)))[0] == 0
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all" * 64)
    for vlm in ((), ("--vlm", junk)):
        rc, out, err = run("ask", "What do you see?", *vlm, "--json")
        assert rc == 0, err
        answer = json.loads(out)
        assert (answer["mode"], answer["model"], answer["task"]) == ("no_image", None, "vqa")
        assert run("ask", "Where is Bo?", *vlm, "--json")[0] == 0
    rc, _, err = run("ask", "Where is Bo?", "--vlm", tmp_path / "nope.gguf")  # a mistyped one, though unused
    assert rc == 2 and "nope.gguf not found" in err and err.count("\n") == 1


def test_ask_with_a_missing_vlm_file_is_a_one_line_error(run, tmp_path, settings):
    settings.memory.mkdir()  # an empty memory: a --memory that is not there is its own error
    rc, _, err = run("ask", "hi", "--vlm", tmp_path / "nope.gguf")
    assert rc == 2 and err.strip().count("\n") == 0 and "nope.gguf not found" in err


class CutShortVlm:
    """A VLM whose answers run into max_tokens: what `ask` says about an answer cut in the middle."""

    has_vision, name, device, marker, template = False, "cut-short", "cpu", MEDIA_MARKER, GEMMA

    def generate(self, rendered, on_text, max_tokens, temperature):
        from edge_rap.generate.vlm import Generation

        on_text("It is a")
        return Generation("It is a", max_tokens, 12, 0.01, None, {"prefix": "computed"}, "length")

    def close(self):
        pass


def test_an_answer_cut_at_max_tokens_says_so(run, settings, monkeypatch):
    settings.memory.mkdir()
    monkeypatch.setattr("edge_rap.generate.assistant.open_vlm", lambda *a, **k: (CutShortVlm(), None))
    rc, out, err = run("ask", "hello", "--vlm", "m.gguf", "--max-tokens", "3")
    assert rc == 0 and out == "It is a\n" and "(the answer was cut at 3 tokens: --max-tokens N" in err
    rc, out, _ = run("ask", "hello", "--vlm", "m.gguf", "--json")
    assert rc == 0 and json.loads(out)["stopped"] == "length"
    monkeypatch.setattr("edge_rap.generate.assistant.open_vlm", lambda *a, **k: (None, None))
    rc, out, err = run("ask", "hello", "--json")
    assert rc == 0 and json.loads(out)["stopped"] is None and "cut at" not in err


def test_ctrl_c_while_streaming_ends_the_streamed_line(run, settings, monkeypatch):
    class Interrupted(CutShortVlm):
        def generate(self, rendered, on_text, max_tokens, temperature):
            on_text("It is a")
            raise KeyboardInterrupt

    settings.memory.mkdir()
    monkeypatch.setattr("edge_rap.generate.assistant.open_vlm", lambda *a, **k: (Interrupted(), None))
    rc, out, err = run("ask", "hello", "--vlm", "m.gguf", "--stream")
    assert rc == 130 and out == "It is a\n" and err == "edge-rap: interrupted\n"


class PromptCatcher(CutShortVlm):
    """A VLM that keeps the prompt it was given."""

    def generate(self, rendered, on_text, max_tokens, temperature):
        self.prompt = rendered.prefix + rendered.suffix
        return super().generate(rendered, on_text, max_tokens, temperature)


class Household:
    def __init__(self, *concepts):
        self._concepts = list(concepts)

    def concepts(self):
        return self._concepts


class RegionRetriever:
    """What retrieval with a detector returns: one candidate per (region, concept), so a concept many times."""

    def __init__(self, recognition):
        self.recognition = recognition

    def recognize(self, image):
        return self.recognition


def test_a_named_concept_not_found_by_region_is_one_reference_and_not_said_to_be_found():
    from edge_rap.generate.assistant import Assistant
    from edge_rap.types import Image, Recognition

    mug = concept(3, "mug", "the blue mug")
    regions = [Box(0, 0, 50, 50), Box(60, 0, 110, 50), Box(0, 60, 50, 110), Box(60, 60, 110, 110)]
    found = hit(mug, 0.9, box=regions[0])
    candidates = [found] + [hit(BO, 0.3 - i / 100, box=b) for i, b in enumerate(regions)]
    vlm = PromptCatcher()
    answer = Assistant(Household(BO, ANYA, mug), RegionRetriever(Recognition("f", (640, 480), [found], candidates)),
                       vlm).ask("What is <bo> doing near the mug?", Image(np.zeros((480, 640, 3), np.uint8), "f"))
    assert vlm.prompt.count("Name: <bo>") == 1 and vlm.prompt.count("Name: <mug>") == 1  # not <bo> 4 times
    assert "<mug> [0, 0, 50, 50]." in vlm.prompt and "<bo> [" not in vlm.prompt  # retrieval did not find <bo>
    assert [h.concept.name for h in answer.concepts] == ["mug"]


class Echo(CutShortVlm):
    """A VLM that answers with the name the question asked about."""

    def generate(self, rendered, on_text, max_tokens, temperature):
        from edge_rap.generate.vlm import Generation

        on_text("No, I don't see <max> here.")
        return Generation("No, I don't see <max> here.", 8, 12, 0.01, None, {"prefix": "computed"}, "eos")


def test_a_name_the_question_wrote_is_not_removed_from_the_answer():
    from edge_rap.generate.assistant import Assistant
    from edge_rap.types import Image, Recognition

    nothing = RegionRetriever(Recognition("f", (64, 48), [], []))
    answer = Assistant(Household(BO), nothing, Echo()).ask("Is <max> in this image?",
                                                            Image(np.zeros((48, 64, 3), np.uint8), "f"))
    assert answer.text == "No, I don't see <max> here." and answer.flagged == []  # not "I don't see [unrecognised]"


def test_a_flagged_name_is_said_removed_only_where_it_was(run, tmp_path, monkeypatch):
    class Says(CutShortVlm):
        def generate(self, rendered, on_text, max_tokens, temperature):
            from edge_rap.generate.vlm import Generation

            on_text(self.text)
            return Generation(self.text, 8, 12, 0.01, None, {"prefix": "computed"}, "eos")

    assert run("remember", "mug", save(tmp_path / "mug.png", scene(2, 320, 240)))[0] == 0
    says = Says()
    monkeypatch.setattr("edge_rap.generate.assistant.open_vlm", lambda *a, **k: (says, None))
    says.text = "The mug is on the table."  # a bare word: an ordinary one, perhaps, and kept
    rc, out, err = run("ask", "What do we keep in the kitchen?", "--vlm", "m.gguf")  # (of the scene: no picture)
    assert rc == 0 and out == "The mug is on the table.\n" and "removed" not in err and "mug" in err
    says.text = "<mug> is on the table."
    rc, out, err = run("ask", "What do we keep in the kitchen?", "--vlm", "m.gguf")
    assert rc == 0 and out == f"{REMOVED} is on the table.\n" and f"replaced by {REMOVED}" in err


def test_a_concept_whose_photo_is_gone_is_described_in_words_not_an_error(tmp_path, caplog):
    from fakes import fake_memory

    from edge_rap.generate.assistant import reference_image

    memory = fake_memory(tmp_path / "memory")
    bo = memory.remember("bo", [save(tmp_path / "bo.png", scene(1, 96, 72))])
    assert reference_image(memory.store, bo).rgb().shape == (72, 96, 3)
    for photo in (tmp_path / "memory" / "images").rglob("*.*"):
        photo.unlink()  # a memory restored without its images/
    assert reference_image(memory.store, bo) is None  # a text reference: name and description
    assert "<bo> has no reference photo" in caplog.text
    memory.close()


def test_a_concept_whose_photo_is_damaged_is_described_in_words_not_an_error(tmp_path, caplog):
    # a truncated reference photo was handed to the VLM, whose decoding of it failed every answer about <bo>
    from fakes import fake_memory

    from edge_rap.generate.assistant import reference_image
    from edge_rap.generate.prompt import image_key

    memory = fake_memory(tmp_path / "memory")
    bo = memory.remember("bo", [save(tmp_path / "bo.png", scene(1, 96, 72))])
    bo = memory.add_views("bo", [save(tmp_path / "bo2.png", scene(2, 96, 72))])
    views = memory.store.views(bo.id)
    first, second = (Path(v.image_path) for v in views)
    first.write_bytes(first.read_bytes()[:200])
    assert reference_image(memory.store, bo).key == image_key(views[1].image_sha256, None)  # the second photo
    assert reference_image(memory.store, bo).rgb().shape == (72, 96, 3)
    second.write_bytes(bytes(second.stat().st_size))  # the same size, its bytes gone: a bad sector
    assert reference_image(memory.store, bo) is None
    assert "<bo> has no reference photo" in caplog.text
    memory.close()


# --- the device profile and the registry --------------------------------------------------------------------

def test_vlm_profile_section(tmp_path):
    assert load_profile("x86-cpu").vlm.model == ""  # template mode by default here
    jetson = load_profile("jetson-orin").vlm
    assert jetson.n_gpu_layers == -1 and jetson.model
    bad = tmp_path / "bad.toml"
    bad.write_text('[vlm]\nreferences = "pictures"\n')
    with pytest.raises(EdgeRapError, match="references must be"):
        load_profile(str(bad))


def test_registry_lists_every_device_class_with_known_models():
    from edge_rap.models.vlm_registry import load_registry

    reg = load_registry()
    assert set(reg["devices"]) == {"jetson-orin-nano-8gb", "jetson-agx-orin", "x86-cpu", "x86-cuda"}
    for names in reg["devices"].values():
        assert all(n in reg["models"] for n in names)
    for entry in reg["models"].values():
        assert entry["licence"] and entry["context_length"] and "model" in entry["files"]


def fake_registry(tmp_path: Path, sha: str | None) -> dict:
    return {"models": {"tiny": {"source": "huggingface", "repo": "someone/tiny-GGUF", "licence": "MIT",
                                "context_length": 512,
                                "files": {"model": {"file": "tiny.gguf", "sha256": sha},
                                          "mmproj": {"file": "mmproj-tiny.gguf", "sha256": None}}}}}


def test_pull_offline_names_the_files_and_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: refused at once
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    models = tmp_path / "models"
    with pytest.raises(EdgeRapError) as e:
        pull("tiny", models, fake_registry(tmp_path, None), progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "tiny.gguf" in msg and "mmproj-tiny.gguf" in msg
    assert str(models / "vlm" / "tiny") in msg and "someone/tiny-GGUF" in msg
    assert "models pull tiny" in msg
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EdgeRapError, match="HF_HUB_OFFLINE"):
        pull("tiny", models, fake_registry(tmp_path, None), progress=False)
    with pytest.raises(EdgeRapError, match="no model named 'nope'") as e:
        pull("nope", models, fake_registry(tmp_path, None))
    assert "VLMs: tiny;" in str(e.value) and "whisper-base.en" in str(e.value)  # the speech models too


def test_an_empty_hf_endpoint_is_the_hub_not_an_address_of_nothing(tmp_path, monkeypatch):
    from edge_rap.models.vlm_registry import _offline_error

    monkeypatch.setenv("HF_ENDPOINT", "")  # (an unset variable exported): the URLs said were "/someone/..."
    entry = fake_registry(tmp_path, None)["models"]["tiny"]
    said = str(_offline_error("tiny", entry, tmp_path, ["tiny.gguf"], "offline"))
    assert "(https://huggingface.co/someone/tiny-GGUF/resolve/main/tiny.gguf)" in said


def hand_placed(tmp_path: Path, tiny: tuple[Path, Path], projector: bytes | None = None) -> tuple[Path, Path]:
    """A model cache with the tiny VLM's two files put in place by hand as `tiny`: (the cache, its folder)."""
    models = tmp_path / "models"
    folder = models / "vlm" / "tiny"
    folder.mkdir(parents=True)
    (folder / "tiny.gguf").write_bytes(tiny[0].read_bytes())
    (folder / "mmproj-tiny.gguf").write_bytes(tiny[1].read_bytes() if projector is None else projector)
    return models, folder


def test_pull_verifies_files_put_in_place_by_hand(tmp_path, tiny):
    models, folder = hand_placed(tmp_path, tiny)
    weights = tiny[0].read_bytes()
    with pytest.raises(EdgeRapError, match="does not match its sha256"):
        pull("tiny", models, fake_registry(tmp_path, "0" * 64))
    assert (folder / "tiny.gguf.rejected").exists() and not (folder / "tiny.gguf").exists()
    (folder / "tiny.gguf").write_bytes(weights)
    files = pull("tiny", models, fake_registry(tmp_path, hashlib.sha256(weights).hexdigest()))
    assert files.model == folder / "tiny.gguf" and files.mmproj == folder / "mmproj-tiny.gguf"
    manifest = json.loads((folder / "vlm.json").read_text())
    assert manifest["files"]["model"]["verified"] is True
    assert manifest["files"]["mmproj"]["sha256"] == hashlib.sha256(tiny[1].read_bytes()).hexdigest()
    assert resolve(models, "tiny").model == files.model
    rows = {r["name"]: r for r in list_vlms(models, fake_registry(tmp_path, None))}
    assert rows["tiny"]["pulled"] is True


def test_pull_refuses_a_web_page_or_another_format_saved_as_the_model(tmp_path, tiny):
    """No sha256 vouches for most hub files, so a page saved by `curl -O` without -L must not be adopted."""
    models, folder = hand_placed(tmp_path, tiny, b"\n<!DOCTYPE html><html>Redirecting to /cdn/...</html>")
    with pytest.raises(EdgeRapError, match=r"mmproj-tiny.gguf is a web page .*moved to .*rejected") as e:
        pull("tiny", models, fake_registry(tmp_path, None))
    assert "\n" not in str(e.value) and not (folder / "vlm.json").exists()
    assert (folder / "mmproj-tiny.gguf.rejected").exists() and (folder / "tiny.gguf").exists()
    (folder / "mmproj-tiny.gguf").write_bytes(b"PK\x03\x04 a zip")
    with pytest.raises(EdgeRapError, match="mmproj-tiny.gguf is not a GGUF file"):
        pull("tiny", models, fake_registry(tmp_path, None))
    (folder / "mmproj-tiny.gguf").write_bytes(tiny[1].read_bytes())
    assert pull("tiny", models, fake_registry(tmp_path, None)).mmproj == folder / "mmproj-tiny.gguf"


@pytest.mark.parametrize("kept", [0.9, 0.3, 0.001])
def test_pull_refuses_a_gguf_cut_short(tmp_path, tiny, kept):
    """A download that stopped early still starts with GGUF; its own tensor table says how long it must be.

    0.9 cuts into the last tensors' data, 0.3 into the vocabulary, 0.001 into the header's first fields."""
    weights = tiny[0].read_bytes()
    models, folder = hand_placed(tmp_path, tiny)
    (folder / "tiny.gguf").write_bytes(weights[: max(8, int(len(weights) * kept))])
    with pytest.raises(EdgeRapError, match=r"tiny.gguf is cut short: .*stopped early; moved to .*rejected") as e:
        pull("tiny", models, fake_registry(tmp_path, None))
    assert "\n" not in str(e.value) and not (folder / "vlm.json").exists()
    (folder / "tiny.gguf").write_bytes(weights + b"\0" * 64)  # padding after the last tensor is allowed
    assert pull("tiny", models, fake_registry(tmp_path, None)).model == folder / "tiny.gguf"


def _gguf(*parts: bytes, n_kv: int = 1, n_tensors: int = 0) -> bytes:
    import struct

    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + b"".join(parts)


def _text(value: bytes) -> bytes:
    import struct

    return struct.pack("<Q", len(value)) + value


def test_a_gguf_of_arrays_nested_past_any_model_is_no_traceback(tmp_path):
    # "an array of an array of ..." (llama.cpp reads no nested arrays) recursed until Python's limit: a
    # RecursionError's traceback from `models pull` and from an --mmproj mtmd refused
    import struct

    from edge_rap.generate.vlm import _not_a_projector
    from edge_rap.models.file_formats import format_problem

    forged = tmp_path / "nested.gguf"
    forged.write_bytes(_gguf(_text(b"a"), struct.pack("<I", 9), struct.pack("<IQ", 9, 1) * 5000))
    assert format_problem(forged, gguf=True) is None  # llama.cpp judges it
    assert _not_a_projector(forged) is None


def test_a_gguf_string_of_a_forged_length_is_skipped_not_read_into_memory(tmp_path):
    # a key, a tensor's name or general.architecture whose length is the file's own size was copied whole
    import struct
    import tracemalloc

    from edge_rap.generate.vlm import _not_a_projector
    from edge_rap.models.file_formats import format_problem

    huge = 64 << 20
    forged = {"key": _gguf(struct.pack("<Q", huge)),
              "architecture": _gguf(_text(b"general.architecture"), struct.pack("<IQ", 8, huge)),
              "tensor": _gguf(n_kv=0, n_tensors=1) + struct.pack("<Q", huge)}
    for what, head in forged.items():
        path = tmp_path / f"{what}.gguf"
        with path.open("wb") as f:  # sparse: the string's bytes are there, as zeros
            f.write(head)
            f.truncate(len(head) + huge + 64)
        tracemalloc.start()
        try:
            format_problem(path, gguf=True), _not_a_projector(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < huge // 8, (what, peak)


def test_a_language_models_architecture_is_quoted_where_it_would_reach_the_terminal(tmp_path):
    # the file's own text went into the one-line error as it was: a newline split it, an escape cleared the screen
    import struct

    from edge_rap.generate.vlm import _not_a_projector

    path = tmp_path / "m.gguf"
    path.write_bytes(_gguf(_text(b"general.architecture"), struct.pack("<I", 8), _text(b"\x1b[2J\nllama")).ljust(96,
                                                                                                           b"\0"))
    assert _not_a_projector(path) == (r"a language model ('\x1b[2J\nllama'), not a vision projector: give the "
                                      "model's mmproj file as --mmproj")


def test_pull_on_a_full_disk_or_read_only_cache_is_one_line(tmp_path, tiny, monkeypatch):
    import errno
    import os

    models, folder = hand_placed(tmp_path, tiny)
    real_write = Path.write_text

    def fail_with(code):
        def write_text(self, *args, **kwargs):
            if self.parent == folder:
                raise OSError(code, os.strerror(code), str(self))
            return real_write(self, *args, **kwargs)
        return write_text

    monkeypatch.setattr(Path, "write_text", fail_with(errno.ENOSPC))
    with pytest.raises(EdgeRapError, match=r"cannot register tiny in .* \(No space left on device\)") as e:
        pull("tiny", models, fake_registry(tmp_path, None))
    assert "\n" not in str(e.value) and not (folder / "vlm.json").exists()
    monkeypatch.setattr(Path, "write_text", real_write)
    assert pull("tiny", models, fake_registry(tmp_path, None)).model == folder / "tiny.gguf"
    monkeypatch.setattr(Path, "write_text", fail_with(errno.EROFS))  # pulled before: verified, nothing to write
    assert pull("tiny", models, fake_registry(tmp_path, None)).model == folder / "tiny.gguf"
    monkeypatch.setattr(Path, "replace", lambda self, target: (_ for _ in ()).throw(
        OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))))
    with pytest.raises(EdgeRapError, match=r"does not match its sha256 \(.*\); it could not be moved aside "
                                           r"\(Read-only file system\): delete it"):
        pull("tiny", models, fake_registry(tmp_path, "0" * 64))


def test_a_pulled_model_whose_file_was_deleted_is_not_pulled(tmp_path, tiny, monkeypatch):
    models, folder = hand_placed(tmp_path, tiny)
    registry = fake_registry(tmp_path, None)
    pull("tiny", models, registry)
    (folder / "mmproj-tiny.gguf").unlink()  # to free space, say
    assert [r["pulled"] for r in list_vlms(models, registry)] == [False]
    monkeypatch.setattr("edge_rap.models.vlm_registry.load_registry", lambda path=None, kind="vlm": registry)
    with pytest.raises(EdgeRapError, match="not in the model cache .*models pull tiny"):
        resolve(models, "tiny")


def test_models_list_json_rows_have_the_same_keys_for_a_model_the_registry_no_longer_lists(tmp_path, tiny):
    models, _ = hand_placed(tmp_path, tiny)
    registry = fake_registry(tmp_path, None)
    pull("tiny", models, registry)
    listed = list_vlms(models, registry)[0]
    (unlisted,) = list_vlms(models, {"models": {"other": registry["models"]["tiny"]}})[1:]  # a renamed entry
    assert unlisted["name"] == "tiny" and unlisted["pulled"] and set(unlisted) == set(listed)
    assert unlisted["licence"] == "MIT" and unlisted["context_length"] == 512  # as recorded when it was pulled


def test_an_unknown_model_name_suggests_the_close_ones(tmp_path):
    from edge_rap.models.vlm_registry import did_you_mean

    known = ["smolvlm2-500m", "smolvlm2-2.2b", "qwen2-vl-2b", "whisper-base.en"]
    assert did_you_mean("smolvlm", known) == "; did you mean 'smolvlm2-500m' or 'smolvlm2-2.2b'?"
    assert did_you_mean("SmolVLM2-500M", known) == "; did you mean 'smolvlm2-500m'?"
    assert did_you_mean("whisper-base", known) == "; did you mean 'whisper-base.en'?"
    assert did_you_mean("llava", known) == ""
    with pytest.raises(EdgeRapError, match="did you mean 'smolvlm2-500m' or 'smolvlm2-2.2b'"):
        pull("smolvlm", tmp_path)
    with pytest.raises(EdgeRapError, match="did you mean 'qwen2-vl-2b'"):
        resolve(tmp_path, "qwen2-vl")


def test_resolve_paths_and_unpulled_names(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"x")
    assert resolve(tmp_path, str(tmp_path / "m.gguf")).mmproj is None
    (tmp_path / "mmproj-m.gguf").write_bytes(b"x")
    assert resolve(tmp_path, str(tmp_path / "m.gguf")).mmproj == tmp_path / "mmproj-m.gguf"  # found beside it
    with pytest.raises(EdgeRapError, match="mmproj-m.gguf is a vision projector .*, not a language model"):
        resolve(tmp_path, str(tmp_path / "mmproj-m.gguf"))  # the other file of the two picked
    assert resolve(tmp_path, "") is None
    (tmp_path / "dir.gguf").mkdir()
    with pytest.raises(EdgeRapError, match="dir.gguf is a folder, not a .gguf file"):
        resolve(tmp_path, str(tmp_path / "dir.gguf"))
    with pytest.raises(EdgeRapError, match="models pull smolvlm2-500m"):
        resolve(tmp_path, "smolvlm2-500m")
    with pytest.raises(EdgeRapError, match="'nosuch-vlm': not a .gguf file nor a model .* knows") as e:
        resolve(tmp_path, "nosuch-vlm")  # pulling it could not help: no `models pull nosuch-vlm` suggested
    assert "models pull nosuch-vlm" not in str(e.value)


def test_an_mmproj_that_is_a_folder_or_a_pipe_is_said_to_be_one_not_missing(tmp_path):
    # "mmproj file /models/ not found" of a folder that was there, and of a FIFO
    (tmp_path / "m.gguf").write_bytes(b"x")
    (tmp_path / "projs").mkdir()
    os.mkfifo(tmp_path / "pipe.gguf")
    for proj, kind in (("projs", "a folder"), ("pipe.gguf", "a pipe")):
        with pytest.raises(EdgeRapError, match=f"mmproj file .*{proj} is {kind}, not a .gguf file"):
            resolve(tmp_path, str(tmp_path / "m.gguf"), str(tmp_path / proj))
    with pytest.raises(EdgeRapError, match="VLM file .*pipe.gguf is a pipe, not a .gguf file"):
        resolve(tmp_path, str(tmp_path / "pipe.gguf"))
    with pytest.raises(EdgeRapError, match="mmproj file .*gone.gguf not found"):
        resolve(tmp_path, str(tmp_path / "m.gguf"), str(tmp_path / "gone.gguf"))


def test_two_projectors_beside_the_model_are_a_choice_not_none(tmp_path):
    """Taken for no projector, the model answered text questions and refused images with 'give its mmproj'."""
    for name in ("m.gguf", "mmproj-m-f16.gguf", "mmproj-m-q8_0.gguf"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(EdgeRapError, match=r"2 projectors beside m.gguf \(mmproj-m-f16.gguf, mmproj-m-q8_0.gguf\): "
                                           r"give one as --mmproj"):
        resolve(tmp_path, str(tmp_path / "m.gguf"))
    chosen = resolve(tmp_path, str(tmp_path / "m.gguf"), str(tmp_path / "mmproj-m-q8_0.gguf"))
    assert chosen.mmproj == tmp_path / "mmproj-m-q8_0.gguf"


def test_an_encoding_the_full_disk_cut_short_leaves_no_file(tmp_path, monkeypatch):
    import errno

    from edge_rap.generate.cache import EncoderCache

    def half_then_full(f, array, allow_pickle):
        f.write(b"\x93NUMPY half")
        raise OSError(errno.ENOSPC, "No space left on device")

    cache = EncoderCache(tmp_path, "ab" * 32)
    monkeypatch.setattr(np, "save", half_then_full)
    cache.put("photo", np.ones(8, np.float32))
    assert list(tmp_path.rglob("*")) == [cache.folder]  # nothing left taking space
    assert cache.get("photo", 8) is not None  # and still kept in memory


def test_a_stored_photos_cache_key_follows_the_decoding(monkeypatch):
    # Encodings cached by file content must be missed once files decode to other pixels (orientation, depth).
    import edge_rap.generate.prompt as prompt

    before = prompt.image_key("ab" * 32, Box(1, 2, 30, 40))
    assert before.startswith("ab" * 32) and before.endswith("@1,2,30,40")
    monkeypatch.setattr(prompt, "DECODING", "some,later,decoding")
    assert prompt.image_key("ab" * 32, Box(1, 2, 30, 40)) != before


def test_the_encoder_cache_keeps_its_files_within_its_budget_least_recently_used_out_first(tmp_path):
    # One file per reference photo ever encoded, never deleted: over months of new photos, of a household and of
    # every memory tried, the model cache only grew.
    from edge_rap.generate.cache import EncoderCache

    cache = _full_encoder_cache(tmp_path)
    assert EncoderCache(tmp_path, "ab" * 32).get("a", 1000) is not None  # read by a later process: used now
    cache.put("d", np.ones(1000, np.float32))
    left = EncoderCache(tmp_path, "ab" * 32)
    assert [k for k in "abcd" if left.get(k, 1000) is not None] == ["a", "c", "d"]  # b, least recently used, went


@pytest.mark.parametrize("damage", ["cut short", "other size"])
def test_an_unusable_encoding_file_is_written_again(tmp_path, damage):
    # `put` leaves a file that is there alone: one cut short by a power cut (or of another size) was read, refused
    # and the photo encoded again at every start, for good
    from edge_rap.generate.cache import EncoderCache

    EncoderCache(tmp_path, "ab" * 32).put("photo", np.ones(8, np.float32))
    path = EncoderCache(tmp_path, "ab" * 32)._file("photo")
    path.write_bytes(path.read_bytes()[:-8] if damage == "cut short" else _npy_bytes(np.ones(6, np.float32)))
    later = EncoderCache(tmp_path, "ab" * 32)
    assert later.get("photo", 8) is None
    later.put("photo", np.full(8, 2, np.float32))  # encoded again
    assert EncoderCache(tmp_path, "ab" * 32).get("photo", 8).tolist() == [2.0] * 8


def test_the_encoder_cache_budget_counts_the_folders_no_longer_written(tmp_path):
    # One folder per projector and llama.cpp fingerprint, each kept within the budget at its own writes: the folder
    # of a projector (or a llama-cpp-python) replaced was never written, so never pruned, again
    from edge_rap.generate.cache import EncoderCache

    before = _full_encoder_cache(tmp_path)
    EncoderCache(tmp_path, "cd" * 32, max_bytes=before.max_bytes).put("d", np.ones(1000, np.float32))
    assert [k for k in "abc" if EncoderCache(tmp_path, "ab" * 32).get(k, 1000) is not None] == ["b", "c"]


def test_the_encoder_cache_deletes_what_a_killed_writer_left(tmp_path):
    import os

    from edge_rap.generate.cache import EncoderCache

    cache = EncoderCache(tmp_path, "ab" * 32)
    cache.put("a", np.ones(8, np.float32))
    left, writing = cache.folder / "x.4321.tmp", cache.folder / "y.1234.tmp"
    for path in (left, writing):
        path.write_bytes(b"\x93NUMPY half")
    os.utime(left, ns=(0, 0))  # a power cut, long ago
    cache.put("b", np.ones(8, np.float32))
    assert not left.exists() and writing.exists()  # another process's write in progress is left alone


def test_a_model_cache_that_cannot_be_listed_does_not_stop_forget(tmp_path, monkeypatch, caplog):
    # forget deletes the encodings after the concept and before its events: an unlistable cache raised in between,
    # so the forgotten concept's events and snapshots stayed
    from edge_rap.generate.cache import EncoderCache, forget_encodings

    EncoderCache(tmp_path, "ab" * 32).put("a", np.ones(8, np.float32))

    def refused(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "iterdir", refused)
    assert forget_encodings(tmp_path, ["a"]) == 0
    assert any("cannot list" in r.getMessage() and "Permission denied" in r.getMessage() for r in caplog.records)


def _full_encoder_cache(folder: Path):
    """An encoder cache (fingerprint "abab...") filled to its budget by "a", "b", "c", written a second apart."""
    import os

    from edge_rap.generate.cache import EncoderCache

    one = np.ones(1000, np.float32)
    cache = EncoderCache(folder, "ab" * 32, max_bytes=3 * len(_npy_bytes(one)))
    for i, key in enumerate(("a", "b", "c")):
        cache.put(key, one)
        os.utime(cache._file(key), ns=(i * 10**9, i * 10**9))
    return cache


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def test_an_encoder_cache_that_cannot_be_listed_still_answers(tmp_path, monkeypatch, caplog):
    # Its folder cleared by hand (or made unreadable) under a running daemon: listing it for the budget raised out
    # of the encoding, and the answer failed.
    import errno

    from edge_rap.generate import cache as cache_module

    def gone(folder):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory")

    cache = cache_module.EncoderCache(tmp_path, "ab" * 32)
    monkeypatch.setattr(cache_module.os, "scandir", gone)
    cache.put("photo", np.ones(8, np.float32))
    assert cache.get("photo", 8) is not None
    assert "cannot list" in caplog.text
