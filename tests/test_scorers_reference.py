"""Scorers against the benchmarks' reference evaluation code, case by case (feature: `mqt-llava eval` gives the
official numbers).

Every expected value is what the reference code returns for that input, worked out by hand from the file and
function named next to it; none was produced by this package. Repositories: LLaVA = haotian-liu/LLaVA (LLaVA-1.5),
m4c = `llava/eval/m4c_evaluator.py` (the copy in pixas/LLaVA), MMMU = MMMU-Benchmark/MMMU. Where the project has a
forgiving reading (`--lenient-parsing`), the same input is also checked in that mode, so each case fails if either
reading drifts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mqt_llava.evaluation.benchmarks import Question, get_benchmark
from mqt_llava.evaluation.scorers import (
    gqa_prediction,
    mme_answer,
    normalize_vqa_answer,
    parse_mmmu_choice,
    parse_mmmu_open,
    parse_scienceqa_answer,
    pope_answer,
    rotate_options,
    score_mmbench,
    score_mme,
    score_multiple_choice,
    score_pope,
    vqa_accuracy,
)
from mqt_llava.evaluation.scorers.mmmu import mmmu_open_correct

# --- VQA answer normalisation: m4c, EvalAIAnswerProcessor.__call__ (word_tokenize, process_punctuation,
# process_digit_article) -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reference"),
    [
        # word_tokenize deletes commas and question marks before any punctuation handling
        ("red,white", "redwhite"),
        ("yes?no", "yesno"),
        # word_tokenize turns "'s" into " 's"
        ("What's up", "what 's up"),
        ("The man's hat!", "man 's hat"),
        # process_punctuation asks whether "-" touches a space in its input, not in the text after ";" was replaced
        ("a;-b-c", "b c"),
        # process_punctuation passes re.UNICODE (32) as the count of PERIOD_STRIP.sub: only 32 periods go
        ("a" + "." * 40 + "b", "a" + "." * 8 + "b"),
        # agreeing cases: digits, articles, contractions, decimal point, digit grouping
        ("Two dogs.", "2 dogs"),
        ("dont", "don't"),
        ("2.5", "2.5"),
        ("1,000", "1000"),
        ("hot-dog", "hot dog"),
    ],
)
def test_vqa_normalisation_matches_evalai_processor(raw: str, reference: str) -> None:
    """VQA normalisation (TextVQA scoring, VQAv2 / VizWiz upload files) equals m4c's EvalAIAnswerProcessor."""
    assert normalize_vqa_answer(raw) == reference


def test_textvqa_accuracy_matches_m4c_evaluator() -> None:
    """TextVQA: m4c TextVQAAccuracyEvaluator._compute_answer_scores / eval_pred_list, which run the processor on the
    prediction and on every human answer before the leave-one-out min(matches / 3, 1)."""
    # "red,white" -> "redwhite": three humans match, so the three who gave it see 2 (2/3), the seven others see 3 (1).
    assert vqa_accuracy("red,white", ["redwhite"] * 3 + ["red white"] * 7) == pytest.approx(0.9)
    # "What's up" -> "what 's up"; "whats up" -> "what's up" (contraction table), a different string. Two match.
    assert vqa_accuracy("What's up", ["what 's up"] * 2 + ["whats up"] * 8) == pytest.approx(0.6)
    samples = [
        {"prediction": "red,white", "answers": ["redwhite"] * 3 + ["red white"] * 7},
        {"prediction": "What's up", "answers": ["what 's up"] * 2 + ["whats up"] * 8},
    ]
    assert get_benchmark("textvqa").scorer()(samples)["accuracy"] == pytest.approx(75.0)


def test_vizwiz_empty_answer_stays_empty() -> None:
    """VizWiz: LLaVA scripts/convert_vizwiz_for_submission.py (__main__) uploads the processed answer as it is, so an
    answer that normalises to "" is scored as "" (wrong against "unanswerable"). The forgiving reading maps it to
    "unanswerable"."""
    samples = [
        {"prediction": "", "answers": ["unanswerable"] * 10, "answer_type": "unanswerable"},
        {"prediction": "?", "answers": ["unanswerable"] * 10, "answer_type": "unanswerable"},
    ]
    vizwiz = get_benchmark("vizwiz")
    assert vizwiz.scorer()(samples)["accuracy"] == 0.0
    assert vizwiz.scorer(lenient=True)(samples)["accuracy"] == 100.0


def test_upload_files_match_llava_conversion_scripts() -> None:
    """Upload files: LLaVA scripts/convert_vqav2_for_submission.py and scripts/convert_vizwiz_for_submission.py
    (__main__) write EvalAIAnswerProcessor(text) per question; VQAv2 writes "" for an unanswered question, VizWiz
    writes "" for an answer that normalises to nothing."""
    questions = [Question(str(qid), "q?", (Path(f"VizWiz_test_{qid:08d}.jpg"),), None) for qid in (1, 2, 3)]
    answers = {"1": "red,white", "2": "What's up"}
    assert get_benchmark("vqav2").submission(questions, answers) == [
        {"question_id": 1, "answer": "redwhite"},
        {"question_id": 2, "answer": "what 's up"},
        {"question_id": 3, "answer": ""},
    ]
    vizwiz_answers = {"1": "?", "2": "Unanswerable.", "3": ""}
    assert get_benchmark("vizwiz").submission(questions, vizwiz_answers) == [
        {"image": "VizWiz_test_00000001.jpg", "answer": ""},
        {"image": "VizWiz_test_00000002.jpg", "answer": "unanswerable"},
        {"image": "VizWiz_test_00000003.jpg", "answer": ""},
    ]


# --- ScienceQA: LLaVA llava/eval/eval_science_qa.py, the parsing in __main__ and get_pred_idx -------------------

SCIENCEQA_OPTIONS = ["cat", "dog", "bird"]


@pytest.mark.parametrize(
    ("text", "reference", "lenient"),
    [
        ("B", "B", "B"),  # `pred_text in args.options`
        ("B. dog", "B", "B"),  # pred_text[0] in options and pred_text[1:3] == ". "
        ("The answer is B.", "B", "B"),  # exactly one match of r'The answer is ([A-Z]).'
        ("The answer is BA.", "B", None),  # the pattern's "." matches the "A"
        ("The answer is C, because", "C", "C"),
        ("The answer is B", None, "B"),  # nothing after the letter for the pattern's "."
        ("The answer is A. The answer is B.", None, "A"),  # two matches: FAILED
        ("(C)", None, "C"),
        ("C,", None, "C"),
        ("B:", None, "B"),
        ("B.", None, "B"),  # two characters, so not "B. "
        ("Answer: B", None, "B"),
        ("b", None, None),
        ("dog", None, "B"),  # the option's own text
        (" B", None, "B"),  # the reference does not trim
        ("D", None, None),  # beyond the three choices: get_pred_idx gives -1
    ],
)
def test_scienceqa_parsing_matches_reference(text: str, reference: str | None, lenient: str | None) -> None:
    """ScienceQA-IMG answer reading: the reference parser by default, the forgiving one with --lenient-parsing."""
    assert parse_scienceqa_answer(text, len(SCIENCEQA_OPTIONS)) == reference
    sample = {"prediction": text, "answer": "B" if reference is None else reference, "options": SCIENCEQA_OPTIONS}
    scienceqa = get_benchmark("scienceqa_img")
    assert scienceqa.scorer()([sample])["accuracy"] == (0.0 if reference is None else 100.0)
    assert score_multiple_choice([sample], lenient=True)["unparsed"] == (1.0 if lenient is None else 0.0)


def test_scienceqa_accuracy_by_reference_and_lenient_reading() -> None:
    """ScienceQA-IMG accuracy and unparsed count over a mix of answer forms, in both modes."""
    samples = [
        {"prediction": text, "answer": "C", "options": SCIENCEQA_OPTIONS, "category": "natural science"}
        for text in ("C", "(C)", "Answer: C", "The answer is CB.")
    ]
    reference = get_benchmark("scienceqa_img").scorer()(samples)
    assert reference["accuracy"] == 50.0 and reference["unparsed"] == 2.0
    lenient = get_benchmark("scienceqa_img").scorer(lenient=True)(samples)
    assert lenient["accuracy"] == 75.0 and lenient["unparsed"] == 1.0


# --- GQA: LLaVA scripts/convert_gqa_for_eval.py (text.rstrip('.').lower()), then GQA's eval.py exact comparison ----


@pytest.mark.parametrize(
    ("prediction", "converted"),
    [("Wood.", "wood"), ("wood .", "wood "), ("wood..", "wood"), ("Red", "red"), (" wood", " wood")],
)
def test_gqa_prediction_matches_conversion_script(prediction: str, converted: str) -> None:
    """GQA prediction conversion: trailing periods dropped, lower-cased, nothing trimmed."""
    assert gqa_prediction(prediction) == converted


def test_gqa_scores_exact_strings() -> None:
    """GQA accuracy: "wood ." keeps its space after conversion and is wrong by the reference, right when lenient."""
    samples = [
        {"prediction": "Wood.", "answer": "wood"},
        {"prediction": "wood .", "answer": "wood"},
        {"prediction": "wood..", "answer": "wood"},
        {"prediction": "Red", "answer": "red"},
    ]
    assert get_benchmark("gqa").scorer()(samples)["accuracy"] == 75.0
    assert get_benchmark("gqa").scorer(lenient=True)(samples)["accuracy"] == 100.0


# --- MMMU: MMMU eval/eval_utils.py, parse_open_response (get_key_subresponses), extract_numbers, eval_open and
# parse_multi_choice_response ---------------------------------------------------------------------------------------


def test_mmmu_open_parsing_matches_reference() -> None:
    """MMMU open answers: an empty key tail is skipped (`if shortest_key_response:`), so "5 =" falls back to the whole
    response; a tail replaces an empty pick even when longer; numbers need a word boundary after their digits."""
    assert set(parse_mmmu_open("5 =")) == {5.0, "5 ="}
    assert mmmu_open_correct("5", parse_mmmu_open("5 ="))
    # Line one: "so " leaves "" and then "is " leaves "7 so", which replaces the empty pick. Line two has no key.
    assert set(parse_mmmu_open("it is 7 so \nfine")) == {7.0, "7 so"}
    assert mmmu_open_correct("7", parse_mmmu_open("it is 7 so \nfine"))
    # r'-?(?:\d+\.\d+|\.\d+|\d+\b)...' finds no number in "5kg".
    assert parse_mmmu_open("The mass is 5kg") == ["5kg"]
    assert not mmmu_open_correct("5", parse_mmmu_open("The mass is 5kg"))
    # agreeing cases
    assert 3.5 in parse_mmmu_open("So the length is 3.50")
    assert mmmu_open_correct(["paris"], parse_mmmu_open("It is Paris."))


def test_mmmu_choice_parsing_matches_reference() -> None:
    """MMMU multiple choice: the edge marks are stripped one after another (",", then ".", ...), so "A or B,." keeps
    its comma and " B " is not found; brackets win; the last mention counts."""
    options = ["red barn", "blue house", "green tree", "grey road"]
    assert parse_mmmu_choice("A or B,.", options) == "A"
    assert parse_mmmu_choice("(A) is tempting, but the answer is (C)", options) == "C"
    assert parse_mmmu_choice("The answer is (B).", options) == "B"
    assert parse_mmmu_choice("the picture shows a large red barn next to a field", options) == "A"


# --- Agreeing benchmarks, pinned so a refactor cannot drift -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reference"),
    [
        ("Yes, there is a dog.", "yes"),
        ("No.", "no"),
        ("no, it isn't", "no"),
        ("There is not a cat.", "no"),
        ("I see one. No", "yes"),  # only the text before the first period counts
        ("NO", "yes"),  # only the words "No", "no" and "not" count
        ("Not really", "yes"),
        ("Nope", "yes"),
        ("", "yes"),
    ],
)
def test_pope_reading_matches_eval_pope(text: str, reference: str) -> None:
    """POPE answer reading: LLaVA llava/eval/eval_pope.py, eval_pope (first sentence, commas dropped, split on
    spaces, "No"/"not"/"no" -> no, anything else -> yes)."""
    assert pope_answer(text) == reference


def test_pope_metrics_match_eval_pope() -> None:
    """POPE metrics per split: eval_pope's TP/FP/TN/FN, precision, recall, F1, accuracy and yes ratio."""
    answers = [("Yes", "yes"), ("NO", "no"), ("No, there is none.", "no"), ("Not really", "no"),
               ("There is not a cat.", "yes"), ("Yes. No.", "yes")]  # fmt: skip
    # Read as yes, yes, no, yes, no, yes: TP 2, FP 2, TN 1, FN 1.
    metrics = score_pope([{"prediction": p, "label": g, "category": "adversarial"} for p, g in answers])
    assert metrics["adversarial/precision"] == pytest.approx(50.0)
    assert metrics["adversarial/recall"] == pytest.approx(200 / 3)
    assert metrics["adversarial/f1"] == pytest.approx(400 / 7)
    assert metrics["adversarial/accuracy"] == pytest.approx(50.0)
    assert metrics["adversarial/yes_ratio"] == pytest.approx(200 / 3)


@pytest.mark.parametrize(
    ("text", "reference"),
    [("Yes", "yes"), ("No", "no"), ("yes, it is", "yes"), ("Nope", "no"), ("Not sure", "no"), ("noyes", "no"),
     ("yesno", "yes"), ("(yes)", "yes"), ("The answer is yes", "other"), ("I think so", "other")],
)  # fmt: skip
def test_mme_reading_matches_calculation(text: str, reference: str) -> None:
    """MME answer reading: MME's eval_tool/calculation.py, calculate_metrics.parse_pred_ans (run by LLaVA
    scripts/v1_5/eval/mme.sh): an exact yes/no, else the first four characters, "yes" before "no", else other."""
    assert mme_answer(text) == reference


def test_mme_acc_plus_matches_calculation() -> None:
    """MME per subtask: acc (questions right) + acc+ (images with both questions right), each in percent."""
    samples = [
        {"prediction": "Yes", "answer": "Yes", "category": "color", "image": "a.jpg"},
        {"prediction": "No", "answer": "No", "category": "color", "image": "a.jpg"},
        {"prediction": "Yes", "answer": "Yes", "category": "color", "image": "b.jpg"},
        {"prediction": "The answer is no", "answer": "No", "category": "color", "image": "b.jpg"},
        {"prediction": "Nope", "answer": "Yes", "category": "color", "image": "c.jpg"},
        {"prediction": "No", "answer": "No", "category": "color", "image": "c.jpg"},
    ]
    metrics = score_mme(samples)
    # Questions right: 4 of 6; images with both right: a only, 1 of 3.
    assert metrics["color/acc"] == pytest.approx(400 / 6)
    assert metrics["color/acc_plus"] == pytest.approx(100 / 3)
    assert metrics["color"] == pytest.approx(400 / 6 + 100 / 3)


def test_mmbench_rotation_and_circular_scoring() -> None:
    """MMBench: the options of round r are those of round r-1 moved left by one (LLaVA
    llava/eval/model_vqa_mmbench.py, eval_model: `options = options[1:] + options[:1]`), the gold letter following
    its option; a question counts only when every round is right (MMBench's circular evaluation)."""
    options = ["a", "b", "c", "d"]
    assert rotate_options(options, "C", 1) == (["b", "c", "d", "a"], "B")
    assert rotate_options(options, "C", 3) == (["d", "a", "b", "c"], "D")
    samples = []
    for index, wrong_round in (("1", None), ("2", 3)):
        for shift in range(4):
            rotated, gold = rotate_options(options, "C", shift)
            prediction = "A" if shift == wrong_round else gold
            samples.append({"prediction": prediction, "answer": gold, "options": rotated, "index": index,
                            "round": shift, "category": "letters"})  # fmt: skip
    metrics = score_mmbench(samples)
    assert metrics["circular_accuracy"] == 50.0
    assert metrics["single_pass_accuracy"] == 100.0
