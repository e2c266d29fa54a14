"""Answer extraction from realistic zero-shot model outputs, per answer type."""

import pytest

from orca_jax.evaluation import answer_types as at
from orca_jax.evaluation import extraction as ex
from orca_jax.evaluation import scoring
from orca_jax.evaluation.loaders import Example

SHAPES = {"A": "circle", "B": "heptagon", "C": "hexagon", "D": "kite", "E": "line"}

MULTIPLE_CHOICE_CASES = [
    ("(B)", "B"),
    ("B", "B"),
    ("B)", "B"),
    ("B.", "B"),
    ("B: heptagon", "B"),
    ("(B) heptagon", "B"),
    ("B heptagon", "B"),
    ("The answer is B.", "B"),
    ("The answer is (B).", "B"),
    ("the answer is: (B) heptagon", "B"),
    ("Answer: B", "B"),
    ("Answer: (C) hexagon", "C"),
    ("**Answer:** **(D)** kite", "D"),
    ("The correct answer is option (E) line.", "E"),
    ("The correct option is E.", "E"),
    ("I would choose (A).", "A"),
    ("Option C is correct because the path has six vertices.", "C"),
    ("(D) is the correct answer, as the shape has two pairs of adjacent equal sides.", "D"),
    (
        "The SVG path draws a heptagon. The path has seven line segments that return to the start, "
        "so the answer is (B).",
        "B",
    ),
    (
        "Let's count the vertices: there are 7 distinct points, and the path closes. "
        "Therefore, among A through E, the answer is B.",
        "B",
    ),
    ("heptagon", "B"),
    ("Heptagon.", "B"),
    ("The path draws a kite.", "D"),
    ("This SVG path element draws a heptagon, because it has seven sides.", "B"),
    ("The answer is heptagon.", "B"),
    ("Step 1: The path starts at (55.57,80.69). The final answer is (B)", "B"),
    ("A", "A"),
    ("The shape is a hexagon (C) since it has six sides.", "C"),
    # Several options discussed: the one a sentence affirms, not the first one named.
    ("Let's look at each option: (A) ... wrong. (C) ... is right.", "C"),
    ("Let's look at each option: (A) circle is wrong, a circle has no vertices. (C) hexagon is right.", "C"),
    ("Let's look at each option: (A) is incorrect. (B) is not it either. (E) fits the path.", "E"),
    ("(A) is wrong because a circle has no vertices. (C) is right: the path has six vertices.", "C"),
    ("Option A is ruled out since the path has corners. Option D has four sides. So option D.", "D"),
    ("The path cannot be (A) or (E). It has four sides with two equal pairs, so (D).", "D"),
    ("(A) is wrong. (D) is correct because it is not a hexagon.", "D"),
    # Answer first: a negation later in the sentence does not reject the leading letter.
    ("(B) heptagon, not (C) hexagon: the path has seven vertices.", "B"),
    ("(B) heptagon, because the path is not closed after six segments.", "B"),
]

MULTIPLE_CHOICE_UNPARSEABLE = [
    "",
    "I am not sure what this path draws.",
    "It could be (A) or (C), depending on how the points are joined.",
    "The path draws something with many sides, maybe a pentagon.",
]


@pytest.mark.parametrize("output, expected", MULTIPLE_CHOICE_CASES)
def test_multiple_choice(output, expected):
    assert ex.extract_choice(ex.clean_output(output), SHAPES) == expected


@pytest.mark.parametrize("output", MULTIPLE_CHOICE_UNPARSEABLE)
def test_multiple_choice_unparseable(output):
    assert ex.extract_choice(ex.clean_output(output), SHAPES) is None


def test_multiple_choice_letter_must_be_an_option():
    assert ex.extract_choice("The answer is (F).", {"A": "x", "B": "y"}) is None
    # Without known options any capital letter in answer position is accepted.
    assert ex.extract_choice("The answer is (F).") == "F"


def test_multiple_choice_longest_option_text_wins():
    options = {"A": "Shrek", "B": "Shrek 2", "C": "Up"}
    assert ex.extract_choice("Shrek 2", options) == "B"
    assert ex.extract_choice("Shrek", options) == "A"
    assert ex.extract_choice("I recommend Shrek 2, a sequel with the same humour.", options) == "B"


def test_agieval_style_outputs():
    options = {"A": "5(√3 + 1)", "B": "6(√3 + √2)", "C": "7(√3 – 1)", "D": "8(√3 – 2)", "E": "None of these"}
    assert ex.extract_choice("A: Among A through E, the answer is A", options) == "A"
    assert ex.extract_choice(" A", options) == "A"
    assert ex.extract_choice("E) None of these", options) == "E"
    assert ex.extract_choice("None of these", options) == "E"
    assert ex.extract_choice("(A)\n\nExplanation: Let the height be h ...", options) == "A"


BOOL = ("False", "True")
YES_NO = ("No", "Yes")
LOWER_YES_NO = ("no", "yes")
VALIDITY = ("invalid", "valid")

LABEL_CASES = [
    ("False", BOOL, "false"),
    ("True.", BOOL, "true"),
    ("The answer is False.", BOOL, "false"),
    ("not ( True ) and ( True ) evaluates to False.", BOOL, "false"),
    ("not ( True ) and ( True ) is False.", BOOL, "false"),
    ("True and not not ( not False ) is True", BOOL, "true"),
    ("( True and False ) is not True.", BOOL, "false"),
    ("First, not ( True ) is False. Then False and True is False. So the answer is False.", BOOL, "false"),
    ("The expression is True because not False is True and True and True is True.", BOOL, "true"),
    ("Answer: True", BOOL, "true"),
    ("**True**", BOOL, "true"),
    ("Yes", YES_NO, "yes"),
    ("No, you do not return to the starting point.", YES_NO, "no"),
    ("Yes. Taking 1 step forward and 1 step backward brings you back.", YES_NO, "yes"),
    ("After following the instructions you end up 3 steps away, so the answer is No.", YES_NO, "no"),
    ("Elanor tells the truth, so the answer is Yes.", YES_NO, "yes"),
    ("A typical person would answer Yes: the black wire was supposed to touch the battery.", YES_NO, "yes"),
    ("yes", LOWER_YES_NO, "yes"),
    ("The sentence is plausible.", LOWER_YES_NO, "yes"),
    ("The sentence is implausible because Elias Lindholm is a hockey player.", LOWER_YES_NO, "no"),
    ("This is not plausible since the buzzer is a basketball term.", LOWER_YES_NO, "no"),
    ("valid", VALIDITY, "valid"),
    ("Invalid", VALIDITY, "invalid"),
    ("The argument is deductively valid.", VALIDITY, "valid"),
    ("The argument is invalid: the conclusion does not follow from the premises.", VALIDITY, "invalid"),
    ("The argument is not valid.", VALIDITY, "invalid"),
    ("The answer is: invalid", VALIDITY, "invalid"),
    ("Given the premises, the argument is valid. Every schoolmate of Sondra is excluded.", VALIDITY, "valid"),
    # A negation flips what follows it, including "implausible".
    ("The sentence is not implausible.", LOWER_YES_NO, "yes"),
    ("It is not implausible that a hockey player scored a goal.", LOWER_YES_NO, "yes"),
    ("The sentence isn't plausible: Elias Lindholm plays hockey.", LOWER_YES_NO, "no"),
    ("The statement isn't true.", BOOL, "false"),
    ("The argument isn't valid.", VALIDITY, "invalid"),
]


@pytest.mark.parametrize("output, labels, expected", LABEL_CASES)
def test_labels(output, labels, expected):
    assert ex.extract_label(ex.clean_output(output), labels) == expected


@pytest.mark.parametrize(
    "output, labels",
    [
        ("I cannot tell.", BOOL),
        ("It depends on whether it is True or False.", BOOL),
        ("", YES_NO),
    ],
)
def test_labels_unparseable(output, labels):
    assert ex.extract_label(output, labels) is None


NUMBER_CASES = [
    ("8", "8"),
    ("8.", "8"),
    ("You have 8 musical instruments.", "8"),
    ("There are eight musical instruments.", "8"),
    ("The answer is 24.", "24"),
    ("Answer: -35", "-35"),
    ("((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) = 24", "24"),
    ("First, -1 + 2 + 45 = 46. Then -2 + -4 + 28 = 22. Finally 46 - 22 = 24.", "24"),
    ("The result is −8.", "-8"),
    ("The total is 1,024 items.", "1024"),
    ("I have a flute, a piano and a violin, so 3 instruments in total.", "3"),
    ("Let's count: flute (1), piano (2), trombone (3). The answer is 3.", "3"),
    ("Then -10 - 10 = -20. So the answer is -20.", "-20"),
    ("The answer is -3", "-3"),
    ("The answer is - 7", "7"),
    # No marker: the number of the concluding clause, not the first number of the text.
    ("There are 3 fruits and 4 vegetables, so you have 7 objects in total.", "7"),
    ("I count 2 apples ... and 3 pears ... so 5 fruits.", "5"),
    ("I count 2 apples and 3 pears. Therefore, you have 5 fruits.", "5"),
    ("You have a flute (1), a piano (2) and a violin (3), which makes three instruments.", "3"),
    ("A flute, a piano and two violins: 4 instruments in total.", "4"),
    ("I have 2 cats and 1 dog, so 3 animals.", "3"),
    ("You have 8 musical instruments. The flute, piano and 6 violins are instruments.", "8"),
]


@pytest.mark.parametrize("output, expected", NUMBER_CASES)
def test_numbers(output, expected):
    assert ex.extract_number(ex.clean_output(output)) == expected


def test_numbers_unparseable_and_equality():
    assert ex.extract_number("I do not know.") is None
    assert ex.numbers_equal("8", "8.0") and not ex.numbers_equal("8", "-8")


WORDS_QUESTION = "Sort the following words alphabetically: List: syndrome therefrom apple it&t"
WORDS_TARGET = "apple it&t syndrome therefrom"
WORD_LIST_CASES = [
    "apple it&t syndrome therefrom",
    "apple, it&t, syndrome, therefrom",
    "Sorted alphabetically: apple it&t syndrome therefrom",
    "Here are the words sorted alphabetically:\n1. apple\n2. it&t\n3. syndrome\n4. therefrom",
    "The answer is apple, it&t, syndrome, therefrom.",
    "- apple\n- it&t\n- syndrome\n- therefrom",
]


@pytest.mark.parametrize("output", WORD_LIST_CASES)
def test_word_lists(output):
    vocab = ex.list_vocabulary(WORDS_QUESTION)
    assert ex.extract_word_list(ex.clean_output(output), vocab) == WORDS_TARGET


def test_word_list_wrong_order_is_extracted_but_wrong():
    e = Example("bbh", "word_sorting", 0, WORDS_QUESTION, WORDS_TARGET, at.WORD_LIST)
    s = scoring.score(e, "syndrome, apple, it&t, therefrom")
    assert s.extracted == "syndrome apple it&t therefrom" and not s.correct


DYCK_QUESTION = (
    "Complete the rest of the sequence, making sure that the parentheses are closed properly. Input: ( [ { } <"
)
DYCK_CASES = [
    "> ] )",
    ">])",
    "The closing sequence is: > ] )",
    "The answer is > ] ).",
    "( [ { } < > ] )",
    "To close the sequence properly: > ] )",
]


@pytest.mark.parametrize("output", DYCK_CASES)
def test_dyck(output):
    e = Example("bbh", "dyck_languages", 0, DYCK_QUESTION, "> ] )", at.DYCK)
    s = scoring.score(e, output)
    assert s.extracted == "> ] )" and s.correct


MATH_CASES = [
    ("\\frac{3}{4}", "\\frac{3}{4}"),
    ("The answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
    (
        "We add the fractions: $\\frac{1}{2}+\\frac{1}{4}=\\frac{3}{4}$. So the final answer is $\\boxed{\\frac34}$.",
        "\\frac{3}{4}",
    ),
    ("0.75", "\\frac{3}{4}"),
    ("3/4", "\\dfrac{3}{4}"),
    ("The answer is 5.", "5"),
    ("x = 5", "5"),
    ("Dividing both sides by 2 gives $x = 5$", "5"),
    ("The answer is $20^\\circ$.", "20\\text{ degrees}"),
    ("The answer is (3, -3).", "(3,-3)"),
    ("The answer is \\left( -\\frac{2}{7}, -\\frac{34}{7} \\right).", "\\left( -\\frac{2}{7}, -\\frac{34}{7} \\right)"),
    ("even", "\\text{even}"),
    ("The answer is 50\\%.", "50"),
    ("$\\begin{pmatrix} -2 \\\\ -7 \\\\ 13 \\end{pmatrix}$", "\\begin{pmatrix} - 2 \\\\ -7 \\\\ 13 \\end{pmatrix}"),
]


@pytest.mark.parametrize("output, target", MATH_CASES)
def test_math(output, target):
    e = Example("agieval", "math", 0, "?", target, at.MATH)
    assert scoring.score(e, output).correct, ex.extract_math(output)


def test_math_negative_answer_after_a_marker():
    """The marker's optional separator dash is not the answer's minus sign (-\\frac{7}{9})."""
    for output in ("The answer is -\\frac{7}{9}.", "So the answer is -\\frac{7}{9}.", "Answer: -\\sqrt{2}"):
        answer = ex.extract_math(output)
        assert answer.startswith("-"), (output, answer)
    e = Example("agieval", "math", 0, "?", "-\\frac{7}{9}", at.MATH)
    assert scoring.score(e, "So the answer is -\\frac{7}{9}.").correct
    assert not scoring.score(e, "So the answer is \\frac{7}{9}.").correct
    assert ex.extract_number("The answer is - 7") == "7"  # a dash then a space is a separator


def test_math_wrong_and_unparseable():
    e = Example("agieval", "math", 0, "?", "\\frac{3}{4}", at.MATH)
    assert not scoring.score(e, "The answer is $\\frac{2}{3}$.").correct
    s = scoring.score(e, "I have no idea how to approach this problem at all.")
    assert s.extracted is None and not s.correct


def test_free_text_for_option_text_targets():
    e = Example("bbh", "movie_recommendation", 0, "?", "Monsters, Inc", at.FREE_TEXT)
    assert scoring.score(e, "Monsters, Inc").correct
    assert scoring.score(e, "The answer is Monsters, Inc.").correct
    assert not scoring.score(e, "(A)").correct


def test_stop_strings_cut_the_next_turn():
    e = Example("bbh", "boolean_expressions", 0, "?", "True", at.LABEL, labels=BOOL)
    assert scoring.score(e, "True<|im_end|>\n<|im_start|>user\nFalse").correct
    assert not scoring.score(e, "<|im_end|>True").correct
