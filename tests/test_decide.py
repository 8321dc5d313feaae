"""Retrieval's rules as pure functions, on made-up scores: no model, no memory."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from edge_rap.retrieve.decide import (add_crop_only, best_boxes, best_region_per_concept, choose_grown,
                                      concept_threshold, decide_scores, mentioned_names, merge_placements,
                                      one_concept_per_place, pair_faces)
from edge_rap.memory.store import fold
from edge_rap.retrieve.policy import RetrievalPolicy
from edge_rap.types import Box, Concept, Hit

BO, ANYA, MUG, CAT = (Concept(i, n, "", "", 0.0, 0.0) for i, n in enumerate(("bo", "anya", "mug", "cat"), start=1))
WHOLE = Box(0, 0, 640, 480)
POLICY = RetrievalPolicy(top_k=2, margin=0.05, fills_frame=0.2, same_place_iou=0.5)


def threshold(concept_id: int) -> float:
    return 0.6


def hit(concept: Concept, score: float, box: Box = WHOLE, threshold: float = 0.6, mentioned: bool = False) -> Hit:
    return Hit(concept, score, threshold, box, mentioned)


def names(hits) -> list[str]:
    return [h.concept.name for h in hits]


def test_present_means_above_threshold_and_not_clearly_beaten_at_most_top_k():
    hits, candidates = decide_scores([(BO, 0.80), (ANYA, 0.77), (MUG, 0.76), (CAT, 0.50)], threshold, WHOLE, POLICY)
    assert names(hits) == ["bo", "anya"]  # mug is within the margin too, but top_k is 2; cat is below
    assert len(candidates) == 4 and all(c.box == WHOLE for c in candidates)
    hits, _ = decide_scores([(BO, 0.80), (ANYA, 0.70)], threshold, WHOLE, POLICY)
    assert names(hits) == ["bo"]  # anya passes her threshold but is clearly beaten


def test_a_named_concept_comes_first_and_is_kept_even_below_its_threshold():
    hits, _ = decide_scores([(BO, 0.80), (MUG, 0.50)], threshold, WHOLE, POLICY, question="is the <mug> here?")
    assert names(hits) == ["mug", "bo"] and hits[0].mentioned and not hits[1].mentioned
    assert [c.name for c in mentioned_names("Where are Bo and <anya>?", [ANYA, BO, CAT])] == ["bo", "anya"]
    assert mentioned_names("a bowl", [BO]) == []  # whole words only


def test_a_name_that_is_a_common_word_is_mentioned_only_where_written_as_one():
    # Before: of <and>, a cat, "Where are Mum and Dad?" typed to `ask` answered "Here is what I was told about <and>",
    # where a voice question named none: a common word (<and>, <the>) followed by another word of its clause is
    # itself, unless written as a name (capitalised within a sentence, or in brackets), as speech.names reads it
    and_, the, is_, max_ = (Concept(i, n, "", "", 0.0, 0.0) for i, n in enumerate(("and", "the", "is", "max"), 20))
    known = [and_, the, is_, max_, BO]
    for question, mentioned in (("Where are Mum and Dad?", []), ("Where is the ball?", []), ("Is Bo home?", ["bo"]),
                                ("And where is Bo?", ["bo"]), ("Where are Bo and Max?", ["bo", "max"]),
                                ("Forget Bo and And.", ["bo", "and"]), ("where is and", ["and"]),
                                ("Is <and> home?", ["and"]), ("Where is Is?", ["is"]), ("Is The in?", ["the"]),
                                ("Stra\u00dfe and Bo and And?", ["bo", "and"]), ("Where is max?", ["max"])):
        assert [c.name for c in mentioned_names(question, known)] == mentioned, question


def test_a_long_question_of_common_words_is_read_as_before_folding_each_character_once(monkeypatch):
    # each common word passed over re-folded the question's starts to find where it stands (12k characters: 1.7 s);
    # the places are now counted once per question, where folding each character alone folds the whole alike
    from edge_rap.retrieve import decide

    and_, max_ = (Concept(i, n, "", "", 0.0, 0.0) for i, n in enumerate(("and", "max"), 20))
    folded = []
    monkeypatch.setattr(decide, "fold", lambda text: folded.append(len(text)) or fold(text))
    for tail in ("", " Cafe\u0301 and tea?"):  # an accent that composes: each start folded anew, as before
        question = "Where are Bo and Max and Mum and Dad? " * 300 + "Is And home and" + tail
        assert [c.name for c in decide.mentioned_names(question, [and_, max_, BO])] == ["bo", "max", "and"]
        assert (sum(folded) <= 3 * len(question)) == (tail == "")  # (before: about 2000 times as many)
        folded.clear()


def test_a_long_question_is_read_back_from_each_common_word_only_to_the_word_before_it(monkeypatch):
    # Before: whether a common word started a sentence, followed an article or another word was searched from the
    # question's start at each one (12k characters: 0.3 s); each search now starts at the word before it
    from edge_rap import words

    reads = []

    class Reading:
        def __init__(self, pattern):
            self.pattern = pattern

        def search(self, text, pos, endpos):
            reads.append(endpos - pos)
            return self.pattern.search(text, pos, endpos)

    for pattern in ("SENTENCE_START", "_DETERMINER", "_WORD_BEFORE"):
        monkeypatch.setattr(words, pattern, Reading(getattr(words, pattern)))
    and_, in_ = (Concept(i, n, "", "", 0.0, 0.0) for i, n in enumerate(("and", "in"), 20))
    question = "Where are Mum and Dad, and is Bo in? " * 300 + "And is the dog in? Is And home and"
    assert [c.name for c in mentioned_names(question, [and_, in_, BO])] == ["bo", "and"]
    assert reads and max(reads) < 12


def test_a_common_word_after_an_article_or_a_possessive_is_the_name_of_a_thing():
    # Before: of <robot> (a toy) and <table>, "Is the robot charging?" and "What is on the table now?" typed to
    # `ask` named neither (the rule for <and> and <the> took each for the word itself, a word following it), where they
    # were named before it, and a voice question hears them: after "the", "my", "a", ... a word is a thing's name
    known = [Concept(i, n, "", "", 0.0, 0.0) for i, n in enumerate(("robot", "table", "the", "and"), 30)] + [BO]
    for question, mentioned in (("Is the robot charging?", ["robot"]), ("What is on the table now?", ["table"]),
                                ("Is my robot on our table?", ["robot", "table"]),
                                ("Where is the ball and the robot?", ["robot"]),
                                ("Is Bo at the table?", ["bo", "table"])):
        assert [c.name for c in mentioned_names(question, known)] == mentioned, question


def test_a_particle_ending_its_clause_after_another_word_is_itself():
    # Before: of <in> and <on>, pets, "Is Bo in?" and "Is the light on?" typed to `ask` named them (the common-word
    # rule let a word with none after it be a name, as "where is and" is <and>); "in" and "on" end a clause as
    # themselves, unless written as a name
    known = [Concept(i, n, "", "", 0.0, 0.0) for i, n in enumerate(("in", "on", "and"), 40)] + [BO]
    for question, mentioned in (("Is Bo in?", ["bo"]), ("Is the light on?", []),
                                ("Who is in, and where is Bo?", ["bo"]),
                                ("Is In in?", ["in"]), ("Where is On?", ["on"]), ("Is <in> in?", ["in"]),
                                ("where is and", ["and"]), ("in", ["in"])):
        assert [c.name for c in mentioned_names(question, known)] == mentioned, question


def test_an_adverb_of_time_ending_its_clause_after_another_word_is_itself():
    # Before: of pets <now> and <yet>, "Where is Bo now?" and "Is Bo back yet?" typed to `ask` named them, as "in"
    # did before it was read as a particle: a common word of time ends a clause as itself too
    known = [Concept(i, n, "", "", 0.0, 0.0) for i, n in enumerate(("now", "yet", "today"), 50)] + [BO]
    for question, mentioned in (("Where is Bo now?", ["bo"]), ("Is Bo back yet?", ["bo"]), ("Is Bo in today?", ["bo"]),
                                ("Where is Now?", ["now"]), ("Is <yet> home?", ["yet"]), ("today", ["today"])):
        assert [c.name for c in mentioned_names(question, known)] == mentioned, question


def test_a_holiday_s_eve_is_a_day_not_the_name_eve():
    # Before: "Christmas Eve" mentioned <eve>, as the voice's matcher did
    eve = Concept(40, "eve", "", "", 0.0, 0.0)
    for question, mentioned in (("What are we doing on Christmas Eve?", []), ("new year's eve with bo", ["bo"]),
                                ("Is Eve with Bo on Christmas Eve?", ["eve", "bo"]), ("where is eve", ["eve"])):
        assert [c.name for c in mentioned_names(question, [eve, BO])] == mentioned, question


def test_of_two_concepts_written_alike_the_one_bracketed_exactly_is_mentioned_alone():
    # A memory of before the apostrophe fold may hold <Zoe´s x> and <Zoe's x>: both went into the VLM's prompt.
    acute, straight = Concept(9, "Zoe\u00b4s x", "", "", 0.0, 0.0), Concept(10, "Zoe's x", "", "", 0.0, 0.0)
    assert mentioned_names("is <Zoe's x> here?", [acute, straight, BO]) == [straight]
    assert mentioned_names("is <Zoe\u00b4s x> here?", [straight, acute]) == [acute]
    assert mentioned_names("<Zoe's x> or <Zoe\u00b4s x>?", [acute, straight]) == [acute, straight]


def test_a_bracketed_exact_name_is_one_of_two_alike_whatever_its_spaces_as_forget_takes_it():
    # Before: <Zoe's\u00a0x> and <Zoe's  x> mentioned both, where `forget` (Store.find) takes <Zoe's x>, spaced as
    # names are stored; a memory's own "tea  pot" is still the one its very spelling means, as `forget` takes it
    acute, straight = Concept(9, "Zoe\u00b4s x", "", "", 0.0, 0.0), Concept(10, "Zoe's x", "", "", 0.0, 0.0)
    for question in ("is <Zoe's\u00a0x> here?", "is <Zoe's  x> here?", "is < Zoe's x > here?"):
        assert mentioned_names(question, [acute, straight]) == [straight], question
    wide, narrow = Concept(9, "tea  pot", "", "", 0.0, 0.0), Concept(10, "tea pot", "", "", 0.0, 0.0)
    assert mentioned_names("is <tea  pot> here?", [narrow, wide]) == [wide]
    assert mentioned_names("is <tea\u00a0pot> here?", [narrow, wide]) == [narrow]


def test_of_two_concepts_written_alike_both_are_mentioned_where_neither_is_bracketed_exactly():
    # the first found took the words, and the other, the one the question may have meant, was silently left out:
    # "is Zoe`s x here?" with a photo answered about <Zoe's x> alone (before "`" was an apostrophe, the one typed)
    grave, straight = Concept(9, "Zoe`s x", "", "", 0.0, 0.0), Concept(10, "Zoe's x", "", "", 0.0, 0.0)
    for question in ("is Zoe`s x here?", "is Zoe's x here?", "is zoe\u2019s X here?", "is <Zoe\u2019s x> here?"):
        assert {c.name for c in mentioned_names(question, [grave, straight, BO])} == {"Zoe`s x", "Zoe's x"}


def test_a_name_with_joiners_is_mentioned_with_them_or_without():
    family, sri = Concept(5, "👨\u200d👩\u200d👧", "", "", 0.0, 0.0), Concept(6, "ශ්\u200dරී", "", "", 0.0, 0.0)
    for question in ("Where is 👨\u200d👩\u200d👧?", "Where is 👨👩👧?"):
        assert mentioned_names(question, [BO, family]) == [family]
    assert mentioned_names("ශ්\u200dරී කොහෙද?", [sri]) == [sri]


def test_a_name_is_mentioned_in_scripts_written_without_spaces_and_with_combining_marks():
    """Chinese, Japanese and Thai put no space after a name, Korean joins a particle to it: "李小龙在哪里？" named
    nobody, as "Mochi在哪里" did not name Mochi. Hindi's vowel signs are marks, not letters: "राह" is not in "राहुल"."""
    li, xiao, rahul, rah, mochi, minsu, pochi, somchai = (
        Concept(i, n, "", "", 0.0, 0.0) for i, n in enumerate(
            ("李小龙", "小龙", "राहुल", "राह", "Mochi", "민수", "ポチ", "สมชาย"), start=10))
    known = [li, xiao, rahul, rah, mochi, minsu, pochi, somchai]
    for question, meant in [("李小龙在哪里？", [li]), ("Mochi在哪里", [mochi]), ("민수는 어디 있어?", [minsu]),
                            ("ポチはどこ?", [pochi]), ("สมชายอยู่ที่ไหน", [somchai]), ("Where is राहुल?", [rahul]),
                            ("李小龙和小龙在哪里", [li, xiao]), ("李小明在哪里", [])]:
        assert mentioned_names(question, known) == meant, question


def test_a_name_written_inside_a_longer_one_is_not_mentioned_by_it():
    tea_pot, pot = Concept(7, "tea pot", "", "", 0.0, 0.0), Concept(8, "pot", "", "", 0.0, 0.0)
    assert mentioned_names("Where is the tea pot?", [pot, tea_pot]) == [tea_pot]
    assert mentioned_names("Is the pot by the tea pot?", [pot, tea_pot]) == [pot, tea_pot]


def test_weak_unplaced_whole_image_evidence_is_dropped_but_a_clear_winner_is_kept():
    whole = [hit(BO, 0.62), hit(ANYA, 0.61)]
    candidates = whole + [hit(CAT, 0.3)]
    kept, whole_box, unplaced = merge_placements(whole, candidates, {}, judged={1, 2}, policy=POLICY)
    assert kept == []  # both within the margin of their threshold, judged by dense matching, placed nowhere
    kept, _, unplaced = merge_placements(whole, candidates, {}, judged={1}, policy=POLICY)
    assert names(kept) == ["anya"] and names(unplaced) == ["anya"]  # not judged (no map): kept, unplaced
    clear = [hit(BO, 0.64)]
    kept, _, unplaced = merge_placements(clear, clear + [hit(ANYA, 0.55)], {}, judged={1, 2}, policy=POLICY)
    assert names(kept) == ["bo"] and names(unplaced) == ["bo"]  # beats every other concept by the margin
    sure = [hit(BO, 0.66)]
    kept, _, _ = merge_placements(sure, sure + [hit(ANYA, 0.63)], {}, judged={1, 2}, policy=POLICY)
    assert names(kept) == ["bo"]  # clears its threshold by the margin: not weak
    kept, _, _ = merge_placements([hit(BO, 0.62, mentioned=True)], candidates, {}, {1, 2}, POLICY)
    assert names(kept) == ["bo"]  # the question names it


def test_a_concepts_threshold_is_the_spaces_or_its_negative_spreads_but_a_copy_of_its_photo_always_clears_it():
    policy = RetrievalPolicy(z=4.0, ceiling=0.99)
    assert concept_threshold(0.6, 0.3, 0.03, policy) == 0.6  # unlike the clutter: the space's threshold
    assert abs(concept_threshold(0.6, 0.5, 0.05, policy) - 0.7) < 1e-9  # like it: 4 spreads above its scores
    gradient = concept_threshold(0.6, 0.85, 0.06, policy)  # 4 spreads above would be 1.09: no photo scores that
    assert gradient == 0.99 and gradient <= 1.0
    assert hit(BO, 1.0, threshold=gradient).accepted and not hit(BO, 0.97, threshold=gradient).accepted


def test_a_copy_of_a_reference_photo_is_kept_though_many_alike_concepts_crowd_it_out_of_the_proposals():
    copy = [hit(BO, 1.0, threshold=0.99)]  # a smooth gradient: other crops of it score nearly as well
    candidates = copy + [hit(ANYA, 0.972, threshold=0.99), hit(MUG, 0.968, threshold=0.99)]
    kept, _, _ = merge_placements(copy, candidates, {}, judged={1, 2, 3}, policy=POLICY)
    assert names(kept) == ["bo"]
    near = [hit(BO, 0.985, threshold=0.95)]  # not a copy, not far ahead, within the margin: weak, dropped
    kept, _, _ = merge_placements(near, near + candidates[1:], {}, judged={1, 2, 3}, policy=POLICY)
    assert kept == []


def test_a_located_box_replaces_the_whole_image_unless_it_scores_clearly_worse():
    place = Box(10, 10, 100, 100)
    whole = [hit(BO, 0.80), hit(ANYA, 0.90)]
    located = {1: hit(BO, 0.78, place), 2: hit(ANYA, 0.70, place)}
    kept, whole_box, unplaced = merge_placements(whole, whole, located, {1, 2}, POLICY)
    assert [h.box for h in kept] == [place, WHOLE]  # anya's crop scored clearly worse: she fills the photo
    assert names(whole_box) == ["anya"] and unplaced == []


def test_a_crop_only_concept_is_added_unless_a_far_stronger_hit_filled_the_frame():
    place = Box(10, 10, 100, 100)
    assert names(add_crop_only([hit(BO, 0.8)], {3: hit(MUG, 0.7, place)}, [], POLICY)) == ["bo", "mug"]
    filled = [hit(BO, 0.95)]  # the frame is bo's photo; the mug found in a part of it is not a mug
    assert names(add_crop_only(filled, {3: hit(MUG, 0.7, place)}, filled, POLICY)) == ["bo"]


def test_one_concept_per_place_and_one_place_per_concept():
    a, b = Box(0, 0, 100, 100), Box(10, 10, 110, 110)
    hits = one_concept_per_place([hit(BO, 0.7, a), hit(ANYA, 0.8, b), hit(MUG, 0.9, Box(300, 300, 400, 400)),
                                  hit(CAT, 0.5, Box(500, 0, 600, 100))], POLICY)
    assert names(hits) == ["mug", "anya"]  # bo overlaps anya's place and is weaker; cat is below its threshold
    regions = best_region_per_concept([hit(BO, 0.7, a), hit(BO, 0.9, b), hit(ANYA, 0.65, a)], top_k=5)
    assert [(h.concept.name, h.box) for h in regions] == [("bo", b), ("anya", a)]


def test_the_largest_owned_box_within_tolerance_wins_but_never_a_refused_one_over_an_accepted_one():
    def option(score: float, side: int, best_other: float = 0.0):
        return (score, Box(0, 0, side, side), np.array([score, best_other]))

    assert choose_grown([option(0.70, 100), option(0.69, 130), option(0.60, 160)], 0.5, 0.02)[1].width == 130
    assert choose_grown([option(0.70, 100), option(0.69, 130, best_other=0.8)], 0.5, 0.02)[1].width == 100
    assert choose_grown([option(0.61, 100), option(0.595, 160)], 0.6, 0.02)[1].width == 100  # 0.595 is refused
    assert choose_grown([option(0.5, 100, best_other=0.9)], 0.4, 0.02) is None  # owns none of them


def test_a_crop_proposed_for_one_concept_places_another_only_where_it_clearly_leads():
    ids = np.array([1, 2, 3])  # concepts 1, 2, 3
    here, there, elsewhere = Box(0, 0, 50, 50), Box(100, 0, 150, 50), Box(0, 100, 50, 150)
    crops = [(1, here), (1, there), (3, elsewhere)]
    scores = np.array([[0.62, 0.58, 0.1],   # 1's own place, owned by 1
                       [0.60, 0.75, 0.1],   # proposed for 1, but it shows 2, 0.15 ahead: 2 is placed there
                       [0.66, 0.1, 0.60]])  # proposed for 3, 1 leads by only 0.06: 3 keeps it, 1 does not
    best = best_boxes(crops, ids, scores, lead=0.1)
    assert best[1][1] == here and best[1][0] == 0.62  # 1 owns its own crop; the higher 0.66 is not clear
    assert best[2][1] == there and best[2][0] == 0.75
    assert best[3][1] == elsewhere and best[3][0] == 0.60  # owns nothing: its best own proposal (for the record)
    assert set(best) == {1, 2, 3}
    assert 2 not in best_boxes(crops, ids, scores, lead=0.2)  # a lead under the bar claims nothing
    assert best_boxes(crops, ids, scores, lead=0.05)[1][1] == elsewhere  # 0.06 ahead now counts: 1's best owned


def test_faces_and_people_pair_best_first_one_to_one():
    pairs = [(0.9, "face-a", 1), (0.85, "face-a", 2), (0.8, "face-b", 1), (0.7, "face-b", 2), (0.3, "face-c", 3)]
    assert pair_faces(pairs, threshold=0.5, key=str) == [(0.9, "face-a", 1), (0.7, "face-b", 2)]


def test_decide_reads_common_words_without_the_speech_layer():
    # Before: retrieve/decide.py imported speech/names.py for the common-word rule: the retrieval layer depended on
    # the voice's, above it (docs/DESIGN.md); the rule is edge_rap/words.py's, which both import
    code = ("import sys, edge_rap.retrieve.decide; "
            "print(sorted(m for m in sys.modules if m.startswith('edge_rap.speech')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
