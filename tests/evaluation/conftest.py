"""Small benchmark files in the public formats, written by the tests themselves (never /work/shared)."""

from __future__ import annotations

import json
import os

import pytest

BBH_FIXTURE = {
    "boolean_expressions": [
        ("not ( True ) and ( True ) is", "False"),
        ("True and not not ( not False ) is", "True"),
        ("not True or ( False and True ) is", "False"),
    ],
    "navigate": [
        (
            "If you follow these instructions, do you return to the starting point? Take 1 step. "
            "Take 1 step backward.\nOptions:\n- Yes\n- No",
            "Yes",
        ),
        (
            "If you follow these instructions, do you return to the starting point? Take 3 steps.\n"
            "Options:\n- Yes\n- No",
            "No",
        ),
    ],
    "formal_fallacies": [
        (
            '"All cats are animals. Tom is a cat. So Tom is an animal."\nIs the argument, given the '
            "explicitly stated premises, deductively valid or invalid?\nOptions:\n- valid \n- invalid",
            "valid",
        ),
        (
            '"Some cats are black. So all cats are black."\nIs the argument, given the explicitly stated '
            "premises, deductively valid or invalid?\nOptions:\n- valid \n- invalid",
            "invalid",
        ),
    ],
    "date_understanding": [
        (
            "Today is Christmas Eve of 1937. What is the date tomorrow in MM/DD/YYYY?\nOptions:\n"
            "(A) 12/11/1937\n(B) 12/25/1937\n(C) 01/04/1938",
            "(B)",
        ),
        (
            "Today is 01/01/2000. What is the date yesterday in MM/DD/YYYY?\nOptions:\n"
            "(A) 12/31/1999\n(B) 01/02/2000\n(C) 12/30/1999",
            "(A)",
        ),
        (
            "Today is 03/02/2001. What is the date tomorrow in MM/DD/YYYY?\nOptions:\n"
            "(A) 03/01/2001\n(B) 03/04/2001\n(C) 03/03/2001",
            "(C)",
        ),
        (
            "Today is 05/05/2005. What is the date today in MM/DD/YYYY?\nOptions:\n"
            "(A) 05/05/2005\n(B) 05/06/2005\n(C) 05/04/2005",
            "(A)",
        ),
    ],
    "movie_recommendation": [
        (
            "Find a movie similar to Shrek, Aladdin:\nOptions:\n(A) Monsters\n(B) Inc\n(C) Town & Country",
            "Monsters, Inc",
        ),
        ("Find a movie similar to Alien, Aliens:\nOptions:\n(A) Predator\n(B) Amelie\n(C) Notting Hill", "(A)"),
        ("Find a movie similar to Up, Cars:\nOptions:\n(A) Heat\n(B) Toy Story\n(C) Se7en", "(B)"),
        ("Find a movie similar to Heat, Ronin:\nOptions:\n(A) Frozen\n(B) Cars\n(C) Collateral", "(C)"),
        ("Find a movie similar to Frozen, Tangled:\nOptions:\n(A) Moana\n(B) Saw\n(C) Heat", "(A)"),
        ("Find a movie similar to Saw, Hostel:\nOptions:\n(A) Cars\n(B) Martyrs\n(C) Up", "(B)"),
        ("Find a movie similar to Rocky, Creed:\nOptions:\n(A) Raging Bull\n(B) Up\n(C) Cars", "(A)"),
        ("Find a movie similar to Cars, Planes:\nOptions:\n(A) Saw\n(B) Heat\n(C) Turbo", "(C)"),
        ("Find a movie similar to Up, Coco:\nOptions:\n(A) Soul\n(B) Saw\n(C) Heat", "(A)"),
        ("Find a movie similar to Jaws, Orca:\nOptions:\n(A) Up\n(B) The Meg\n(C) Cars", "(B)"),
    ],
    "object_counting": [
        ("I have a flute, a piano, and two lamps. How many musical instruments do I have?", "2"),
        ("I have a violin, a drum, a trumpet, and a chair. How many musical instruments do I have?", "3"),
    ],
    "multistep_arithmetic_two": [
        ("((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) =", "24"),
        ("((3 - 5) * (2 + 2)) =", "-8"),
    ],
    "word_sorting": [
        ("Sort the following words alphabetically: List: syndrome therefrom apple", "apple syndrome therefrom"),
        ("Sort the following words alphabetically: List: it&t dorothy burke", "burke dorothy it&t"),
    ],
    "dyck_languages": [
        ("Complete the rest of the sequence, making sure that the parentheses are closed properly. Input: [ [", "] ]"),
        (
            "Complete the rest of the sequence, making sure that the parentheses are closed properly. Input: ( < { } >",
            ")",
        ),
    ],
}

AGIEVAL_FIXTURE = {
    "lsat-ar": [
        {
            "passage": "Five students give reports on three days.",
            "question": "Which could be true?",
            "options": [
                "(A)Kyle goes first",
                "(B)Helen goes last",
                "(C)Nina goes second",
                "(D)Olivia goes third",
                "(E)Robert goes fourth",
            ],
            "label": "C",
            "answer": None,
            "other": None,
        },
        {
            "passage": "Five students give reports on three days.",
            "question": "Which must be false?",
            "options": ["(A)x", "(B)y", "(C)z", "(D)w", "(E)v"],
            "label": "A",
            "answer": None,
            "other": None,
        },
    ],
    "logiqa-en": [
        {
            "passage": "Dialects differ by region.",
            "question": "Which can be inferred?",
            "options": ["A No dangshen", "B No Shouwu", "C Some baizhu", "D All baizhu"],
            "label": "B",
            "answer": None,
            "other": None,
        },
        {
            "passage": "Three staff members travel.",
            "question": "Who are they?",
            "options": ["(A)E and J", "(C)E and M", "(B)F and G", "(D)F and J"],
            "label": "C",
            "answer": None,
            "other": None,
        },
    ],
    "sat-math": [
        {
            "passage": "",
            "question": "If $\\frac{x-1}{3}=k$ and $k=3$, what is the value of $x ?$",
            "options": ["(A)2", "(B)4", "(C)9", "(D)10"],
            "label": "D",
            "other": {"solution": "x=10"},
        },
    ],
    "gaokao-english": [
        {
            "passage": "A watch.",
            "question": "With help from Mr. H, you can ____.",
            "options": [" A. stop using batteries.   ", "(B)finish your homework on time.", "(C)sing", "(D)fly"],
            "label": "B",
            "answer": None,
            "other": {"source": "2014"},
        },
    ],
    "math": [
        {
            "passage": None,
            "question": "What is $\\frac{1}{2}+\\frac{1}{4}$?",
            "options": None,
            "label": None,
            "answer": "\\frac{3}{4}",
            "other": {"solution": "..."},
        },
        {"passage": None, "question": "Solve $2x = 10$.", "options": None, "label": None, "answer": "5", "other": None},
    ],
}


def write_bbh(directory: str, tasks: dict = BBH_FIXTURE) -> str:
    os.makedirs(directory, exist_ok=True)
    for task, rows in tasks.items():
        with open(os.path.join(directory, task + ".json"), "w") as f:
            json.dump({"canary": "fixture", "examples": [{"input": i, "target": t} for i, t in rows]}, f)
    return directory


def write_agieval(directory: str, tasks: dict = AGIEVAL_FIXTURE) -> str:
    os.makedirs(directory, exist_ok=True)
    for task, rows in tasks.items():
        with open(os.path.join(directory, task + ".jsonl"), "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    return directory


@pytest.fixture
def bbh_fixture_dir(tmp_path) -> str:
    return write_bbh(str(tmp_path / "bbh"))


@pytest.fixture
def agieval_fixture_dir(tmp_path) -> str:
    return write_agieval(str(tmp_path / "agieval" / "v1"))


@pytest.fixture
def bbh_fixture() -> dict:
    return BBH_FIXTURE


@pytest.fixture
def agieval_fixture() -> dict:
    return AGIEVAL_FIXTURE
