"""Loaders, answer-type classification and the download command, on self-written fixtures."""

import json
import os

import pytest

from orca_jax.evaluation import answer_types as at
from orca_jax.evaluation import download, loaders


def test_bbh_format_dir_loads_every_task_with_its_answer_type(bbh_fixture_dir, bbh_fixture):
    tasks = loaders.load_bbh_format_dir(bbh_fixture_dir)
    assert sorted(tasks) == sorted(bbh_fixture)
    assert {t: len(ex) for t, ex in tasks.items()} == {t: len(r) for t, r in bbh_fixture.items()}
    types = {t: ex[0].answer_type for t, ex in tasks.items()}
    assert types == {
        "boolean_expressions": at.LABEL,
        "navigate": at.LABEL,
        "formal_fallacies": at.LABEL,
        "date_understanding": at.MULTIPLE_CHOICE,
        "movie_recommendation": at.FREE_TEXT,
        "object_counting": at.NUMBER,
        "multistep_arithmetic_two": at.NUMBER,
        "word_sorting": at.WORD_LIST,
        "dyck_languages": at.DYCK,
    }
    # The option-text target of movie_recommendation is free text; its other examples stay MC.
    movie = tasks["movie_recommendation"]
    assert [e.answer_type for e in movie[:2]] == [at.FREE_TEXT, at.MULTIPLE_CHOICE]
    assert movie[1].options == (("A", "Predator"), ("B", "Amelie"), ("C", "Notting Hill"))
    assert tasks["boolean_expressions"][0].labels == ("False", "True")
    assert tasks["navigate"][0].labels == ("No", "Yes")
    assert tasks["formal_fallacies"][0].labels == ("invalid", "valid")
    assert (
        tasks["date_understanding"][2].index == 2 and tasks["date_understanding"][2].uid == "bbh/date_understanding/2"
    )


def test_bbh_task_subset_and_missing_task(bbh_fixture_dir, tmp_path):
    d = bbh_fixture_dir
    assert list(loaders.load_bbh_format_dir(d, ["navigate"])) == ["navigate"]
    with pytest.raises(FileNotFoundError, match="not_a_task"):
        loaders.load_bbh_format_dir(d, ["not_a_task"])
    with pytest.raises(FileNotFoundError, match="download"):
        loaders.load_bbh_format_dir(str(tmp_path / "absent"))


def test_agieval_default_tasks_options_and_targets(agieval_fixture_dir):
    tasks = loaders.load_agieval_dir(agieval_fixture_dir)
    # Default: the paper's English MC tasks that are present, plus math; not gaokao-english.
    assert list(tasks) == ["logiqa-en", "lsat-ar", "sat-math", "math"]
    lsat = tasks["lsat-ar"][0]
    assert lsat.answer_type == at.MULTIPLE_CHOICE and lsat.target == "C"
    assert lsat.options[0] == ("A", "Kyle goes first") and len(lsat.options) == 5
    assert lsat.passage.startswith("Five students")
    logiqa = tasks["logiqa-en"]
    assert logiqa[0].options == (("A", "No dangshen"), ("B", "No Shouwu"), ("C", "Some baizhu"), ("D", "All baizhu"))
    # Printed labels out of order: kept, and the options sorted by them (label C = "E and M").
    assert logiqa[1].options == (("A", "E and J"), ("B", "F and G"), ("C", "E and M"), ("D", "F and J"))
    assert tasks["sat-math"][0].passage is None
    math = tasks["math"]
    assert [e.answer_type for e in math] == [at.MATH, at.MATH] and math[0].target == "\\frac{3}{4}"
    gaokao = loaders.load_agieval_dir(agieval_fixture_dir, ["gaokao-english"])["gaokao-english"][0]
    assert gaokao.options[0] == ("A", "stop using batteries.")


@pytest.mark.parametrize(
    "options, expected",
    [
        (["(A)x", "(B)y"], [("A", "x"), ("B", "y")]),
        ([" A. They will be moved.  ", "(B)annoyed"], [("A", "They will be moved."), ("B", "annoyed")]),
        (["A first", "B Third", "C Fourth"], [("A", "first"), ("B", "Third"), ("C", "Fourth")]),
        (["A person walks", "(B)x"], [("A", "A person walks"), ("B", "x")]),
        (
            ["(A)A is a doctor;", "(B)I am;", "C? Geng is not;", "D? Ding is."],
            [("A", "A is a doctor;"), ("B", "I am;"), ("C", "Geng is not;"), ("D", "Ding is.")],
        ),
        (["(A)Warehouse No.1", "Storehouse B.3"], [("A", "Warehouse No.1"), ("B", "Storehouse B.3")]),
    ],
)
def test_agieval_option_normalisation(options, expected):
    assert list(loaders.normalize_agieval_options(options)) == expected


def test_paper_task_sets():
    assert len(loaders.BBH_TASKS) == 27 and len(loaders.BBH_PAPER_TASKS) == 23
    assert set(loaders.BBH_FREE_FORM_TASKS) == {
        "dyck_languages",
        "multistep_arithmetic_two",
        "object_counting",
        "word_sorting",
    }
    assert len(loaders.AGIEVAL_ENGLISH_MC_TASKS) == 8


@pytest.mark.parametrize(
    "targets, kind",
    [
        (["(A)", "(B)", "(C)"], at.MULTIPLE_CHOICE),
        (["True", "False", "True"], at.LABEL),
        (["yes", "no", "no"], at.LABEL),
        (["valid", "invalid"], at.LABEL),
        (["True"], at.LABEL),
        (["12", "-3", "7"], at.NUMBER),
        (["] ]", ")", "} > )"], at.DYCK),
        (["apple bear", "cat dog eel", "ant"], at.WORD_LIST),
        (["Paris", "the blue whale", "42 apples"], at.FREE_TEXT),
    ],
)
def test_classify_targets(targets, kind):
    assert at.classify_targets(targets) == kind


def test_label_set_adds_complements():
    assert at.label_set(["True", "True"]) == ("False", "True")
    assert at.label_set(["no"]) == ("no", "yes")
    assert at.label_set(["invalid"]) == ("invalid", "valid")


def test_download_with_mocked_fetch(tmp_path, agieval_fixture):
    payloads = {}

    def fetch(url):
        assert url.startswith("https://raw.githubusercontent.com/")
        task = os.path.basename(url).rsplit(".", 1)[0]
        if url.endswith(".json"):
            body = json.dumps({"examples": [{"input": f"{task}?", "target": "(A)"}]}).encode()
        else:
            body = (json.dumps(agieval_fixture["lsat-ar"][0]) + "\n").encode()
        payloads[url] = body
        return body

    dirs = download.download(str(tmp_path), fetch=fetch, log=lambda _: None)
    assert len(payloads) == 27 + 10
    assert any("suzgunmirac/BIG-Bench-Hard/" + download.BBH_COMMIT in u for u in payloads)
    assert any("ruixiangcui/AGIEval/" + download.AGIEVAL_COMMIT + "/data/v1/lsat-ar.jsonl" in u for u in payloads)
    assert len(loaders.load_bbh_format_dir(dirs["bbh_dir"])) == 27
    assert len(loaders.load_agieval_dir(dirs["agieval_dir"])) == 9
    # A second run finds every file and fetches nothing.
    download.download(str(tmp_path), fetch=lambda url: pytest.fail(f"fetched {url} again"), log=lambda _: None)
