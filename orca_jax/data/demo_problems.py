"""Procedurally generated reasoning problems for the demo: BBH-style inputs, answers and worked steps.

Seven kinds, each named after the BIG-Bench Hard task whose input and answer
format it copies (so the demo's zero-shot evaluation reads like BBH):

  kind                       answer format         FLAN sub-collection it stands in for
  multistep_arithmetic_two   integer               cot
  web_of_lies                Yes / No              cot
  word_sorting               sorted words          niv2
  object_counting            integer               t0
  navigate                   Yes / No              t0
  boolean_expressions        True / False          flan2021
  date_understanding         (A)..(E) option       flan2021 (multiple choice)

A `Problem` carries a canonical `key` (the instance, independent of wording: e.g.
the *set* of words to sort), the BBH-format input, the target, the explanation
steps, and other phrasings of the same query for training. Held-out evaluation
uses only problems whose key hashes into the evaluation bucket (`is_eval_key`),
training only the others, so the two can never share an instance.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import random
from collections.abc import Callable

ANSWER_PREFIX = "So the answer is "
EVAL_BUCKETS = 10  # One key in EVAL_BUCKETS is reserved for evaluation.


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem instance.

    Attributes:
      kind: generator name (a BBH task name).
      key: canonical instance id; problems with equal keys are the same problem.
      bbh_input: the query in BBH's format (zero-shot evaluation input).
      target: the answer in BBH's format.
      steps: sentences of the worked solution (without the final answer sentence).
      phrasings: training phrasings of the query; phrasings[0] == bbh_input.
      multiple_choice: whether the query lists options.
    """

    kind: str
    key: str
    bbh_input: str
    target: str
    steps: tuple[str, ...]
    phrasings: tuple[str, ...]
    multiple_choice: bool = False

    def explained_answer(self) -> str:
        """The step-by-step answer, ending with 'So the answer is {target}.'."""
        return "\n".join(self.steps + (f"{ANSWER_PREFIX}{self.target}.",))


def is_eval_key(key: str) -> bool:
    """True for the 1/EVAL_BUCKETS of problem keys reserved for held-out evaluation."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % EVAL_BUCKETS == 0


def extract_answer(text: str) -> str | None:
    """The final answer of an explained response ('... So the answer is X.' -> 'X'), else None."""
    i = text.rfind(ANSWER_PREFIX)
    if i < 0:
        return None
    answer = text[i + len(ANSWER_PREFIX) :].strip()
    return answer[:-1] if answer.endswith(".") else answer


# --------------------------------------------------------------------------- arithmetic


def multistep_arithmetic_two(rng: random.Random) -> Problem:
    """'((a + b) - (c - d)) =' with two-digit numbers, as BBH's multistep arithmetic."""
    groups = []
    for _ in range(2):
        nums = [rng.randint(-20, 99) for _ in range(rng.choice((2, 2, 3)))]
        ops = [rng.choice("+-") for _ in range(len(nums) - 1)]
        groups.append((nums, ops))
    outer = rng.choice("+-")

    def render(nums, ops):
        out = str(nums[0])
        for op, n in zip(ops, nums[1:]):
            out += f" {op} {str(n)}"
        return out

    def value(nums, ops):
        v = nums[0]
        for op, n in zip(ops, nums[1:]):
            v = v + n if op == "+" else v - n
        return v

    texts = [render(*g) for g in groups]
    values = [value(*g) for g in groups]
    result = values[0] + values[1] if outer == "+" else values[0] - values[1]
    expr = f"(({texts[0]}) {outer} ({texts[1]}))"
    steps = (
        f"First parentheses: {texts[0]} = {values[0]}.",
        f"Second parentheses: {texts[1]} = {values[1]}.",
        f"Then {values[0]} {outer} {str(values[1]) if values[1] >= 0 else '(' + str(values[1]) + ')'} = {result}.",
    )
    phrasings = (
        f"{expr} =",
        f"Calculate {expr}.",
        f"What is the value of {expr}?",
    )
    return Problem("multistep_arithmetic_two", f"arith|{expr}", phrasings[0], str(result), steps, phrasings)


# --------------------------------------------------------------------------- web of lies

_NAMES = (
    "Sherrie Vernell Alexis Michaela Elanor Fidel Kandi Rashida Jerry Millie Ryan Jamey Amberly Shenna Delfina "
    "Leda Gwenn Jaymie Ka Crista Christie Antwan Audrie Bernita Lorine Vina Willian Osvaldo Teressa Inga Alejandro "
    "Maybelle Dallas Helene Sal Jim Phoebe Conception Shaunda Lorine Tamika Raymond Yoland Andree Marty"
).split()


def web_of_lies(rng: random.Random) -> Problem:
    """A chain of people vouching for or accusing the previous one; does the last tell the truth?"""
    names = rng.sample(sorted(set(_NAMES)), rng.randint(3, 5))
    truthful = rng.random() < 0.5
    first = f"{names[0]} {'tells the truth' if truthful else 'lies'}."
    statements, steps = [first], [first]
    state = truthful
    for prev, name in zip(names, names[1:]):
        claims_truth = rng.random() < 0.5
        claim = "tells the truth" if claims_truth else "lies"
        statements.append(f"{name} says {prev} {claim}.")
        state = claims_truth == state
        steps.append(f"{name} says {prev} {claim}, so {name} {'tells the truth' if state else 'lies'}.")
    question = f"Does {names[-1]} tell the truth?"
    body = " ".join(statements)
    target = "Yes" if state else "No"
    phrasings = (
        f"Question: {body} {question}",
        f"{body} {question}",
        f"Each person below either always tells the truth or always lies. {body} {question} Answer Yes or No.",
    )
    return Problem("web_of_lies", "lies|" + body, phrasings[0], target, tuple(steps), phrasings)


# --------------------------------------------------------------------------- word sorting

_WORDS = (
    "apple river stone cloud garden window yellow silver forest candle marble pepper rocket planet ocean "
    "island winter summer autumn spring bridge castle dragon feather guitar hammer jacket kettle ladder "
    "mirror needle orange pencil quartz rabbit saddle tiger umbrella violin wagon zebra anchor basket "
    "cactus dolphin engine falcon glacier harbor igloo jungle koala lantern meadow nectar oyster parrot "
    "quiver raven salmon tunnel unicorn valley walrus yogurt zipper acorn bamboo copper desert ember fossil "
    "grape helmet ivory jasmine kitten lemon mango noodle olive piano quill ribbon shadow thunder urchin "
    "velvet willow yarn badge cobalt denim eagle fabric gravel honey insect jewel kayak lizard magnet nickel "
    "orbit pillow quiet rubber sponge timber uncle vapor whistle ash birch cedar dune elm fern gust hazel "
    "iris juniper kelp lotus moss nettle oak pine quince reed sage thistle"
).split()


def word_sorting(rng: random.Random) -> Problem:
    """'Sort the following words alphabetically: List: ...' -> the words sorted, space separated."""
    words = rng.sample(sorted(set(_WORDS)), rng.randint(2, 7))
    ordered = sorted(words)
    listing = " ".join(words)
    steps = [f"The words to sort are: {', '.join(words)}."]
    firsts = ", ".join(f"{w} starts with '{w[0]}'" for w in words)
    steps.append(f"Looking at the first letters: {firsts}.")
    by_letter: dict[str, list[str]] = {}
    for w in ordered:
        by_letter.setdefault(w[0], []).append(w)
    for letter, group in by_letter.items():
        if len(group) > 1:
            steps.append(
                f"{' and '.join(group)} all start with '{letter}', so we compare the following letters: "
                f"{', '.join(group)}."
            )
    steps.append(f"In alphabetical order: {', '.join(ordered)}.")
    phrasings = (
        f"Sort the following words alphabetically: List: {listing}",
        "Definition: In this task, you are given a list of words. Sort the words in alphabetical order and "
        f"output them separated by spaces.\n\nInput: {listing}\n\nOutput:",
        f"Arrange these words in alphabetical order: {listing}",
    )
    return Problem(
        "word_sorting", "sort|" + " ".join(ordered), phrasings[0], " ".join(ordered), tuple(steps), phrasings
    )


# --------------------------------------------------------------------------- object counting

_CATEGORIES: dict[str, tuple[tuple[str, str], ...]] = {
    "musical instruments": (
        ("piano", "pianos"),
        ("flute", "flutes"),
        ("violin", "violins"),
        ("drum", "drums"),
        ("trumpet", "trumpets"),
        ("accordion", "accordions"),
        ("clarinet", "clarinets"),
        ("trombone", "trombones"),
    ),
    "fruits": (
        ("apple", "apples"),
        ("banana", "bananas"),
        ("peach", "peaches"),
        ("plum", "plums"),
        ("grape", "grapes"),
        ("strawberry", "strawberries"),
        ("orange", "oranges"),
        ("nectarine", "nectarines"),
    ),
    "vegetables": (
        ("carrot", "carrots"),
        ("onion", "onions"),
        ("potato", "potatoes"),
        ("cabbage", "cabbages"),
        ("yam", "yams"),
        ("garlic bulb", "garlic bulbs"),
        ("lettuce head", "lettuce heads"),
        ("celery stalk", "celery stalks"),
    ),
    "animals": (
        ("cat", "cats"),
        ("dog", "dogs"),
        ("rabbit", "rabbits"),
        ("goat", "goats"),
        ("snake", "snakes"),
        ("fish", "fish"),
        ("donkey", "donkeys"),
        ("mouse", "mice"),
    ),
    "objects": (
        ("chair", "chairs"),
        ("lamp", "lamps"),
        ("stove", "stoves"),
        ("table", "tables"),
        ("bed", "beds"),
        ("couch", "couches"),
        ("microwave", "microwaves"),
        ("oven", "ovens"),
    ),
}
_COUNT_WORDS = {1: "a", 2: "two", 3: "three", 4: "four"}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _phrase(item: tuple[str, str], count: int) -> str:
    singular, plural = item
    return f"{_article(singular)} {singular}" if count == 1 else f"{_COUNT_WORDS[count]} {plural}"


def object_counting(rng: random.Random) -> Problem:
    """'I have a flute, two plums, ... How many fruits do I have?' -> an integer."""
    category = rng.choice(sorted(_CATEGORIES))
    n_target = rng.randint(1, 4)
    targets = rng.sample(_CATEGORIES[category], n_target)
    others = [c for c in sorted(_CATEGORIES) if c != category]
    distractors = [rng.choice(_CATEGORIES[rng.choice(others)]) for _ in range(rng.randint(0, 3))]
    entries = [(item, rng.choice((1, 1, 2, 3, 4)), True) for item in targets]
    seen = {item for item, _, _ in entries}
    for item in distractors:
        if item not in seen:
            seen.add(item)
            entries.append((item, rng.choice((1, 1, 2, 3)), False))
    rng.shuffle(entries)
    phrases = [_phrase(item, count) for item, count, _ in entries]
    listing = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + ", and " + phrases[-1]
    if len(phrases) == 2:
        listing = f"{phrases[0]} and {phrases[1]}"
    counted = [(item, count) for item, count, is_target in entries if is_target]
    total = sum(c for _, c in counted)
    steps = (
        f"The {category} in the list are: " + ", ".join(f"{_phrase(i, c)} ({c})" for i, c in counted) + ".",
        f"Adding them up: {' + '.join(str(c) for _, c in counted)} = {total}.",
    )
    question = f"How many {category} do I have?"
    phrasings = (
        f"I have {listing}. {question}",
        f"Question: I have {listing}. {question}\nAnswer:",
        f"Count carefully. I have {listing}. {question}",
    )
    key = "count|" + category + "|" + ";".join(sorted(f"{i[0]}:{c}" for i, c, _ in entries))
    return Problem("object_counting", key, phrasings[0], str(total), steps, phrasings)


# --------------------------------------------------------------------------- navigate

_MOVES = {"forward": (0, 1), "backward": (0, -1), "left": (-1, 0), "right": (1, 0)}


def navigate(rng: random.Random) -> Problem:
    """'Always face forward. Take 3 steps left. ...' -> do you return to the start? Yes / No."""
    moves = [(rng.choice(sorted(_MOVES)), rng.randint(1, 9)) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.5:  # Close the loop about half the time, so Yes and No are balanced.
        x = sum(_MOVES[d][0] * n for d, n in moves)
        y = sum(_MOVES[d][1] * n for d, n in moves)
        if x:
            moves.append(("left" if x > 0 else "right", abs(x)))
        if y:
            moves.append(("backward" if y > 0 else "forward", abs(y)))
        rng.shuffle(moves)
    x = y = 0
    steps = ["Start at (0, 0), facing forward."]
    for d, n in moves:
        x, y = x + _MOVES[d][0] * n, y + _MOVES[d][1] * n
        steps.append(f"Take {n} step{'s' if n > 1 else ''} {d}: now at ({x}, {y}).")
    back = x == 0 and y == 0
    steps.append(f"We end at ({x}, {y}), which is {'' if back else 'not '}the starting point.")
    instructions = " ".join(f"Take {n} step{'s' if n > 1 else ''} {d}." for d, n in moves)
    options = "Options:\n- Yes\n- No"
    question = "Do these instructions bring you back to the starting point?"
    phrasings = (
        "If you follow these instructions, do you return to the starting point? "
        f"Always face forward. {instructions}\n{options}",
        f"Always face forward. {instructions} After these steps, are you back where you started?\n{options}",
        f"Instructions: Always face forward. {instructions}\nQuestion: {question}\n{options}",
    )
    key = "nav|" + instructions
    return Problem("navigate", key, phrasings[0], "Yes" if back else "No", tuple(steps), phrasings)


# --------------------------------------------------------------------------- boolean expressions


def _bool_tree(rng: random.Random, depth: int):
    """A random expression tree: bool | ('not', t) | (op, left, right)."""
    if depth == 0 or rng.random() < 0.3:
        leaf = rng.random() < 0.5
        return ("not", leaf) if rng.random() < 0.3 else leaf
    if rng.random() < 0.2:
        return ("not", _bool_tree(rng, depth - 1))
    return (rng.choice(("and", "or")), _bool_tree(rng, depth - 1), _bool_tree(rng, depth - 1))


def _render_bool(t, rng: random.Random, top: bool = True) -> str:
    if isinstance(t, bool):
        return f"( {t} )" if (not top and rng.random() < 0.15) else str(t)
    if t[0] == "not":
        inner = _render_bool(t[1], rng, top=False)
        return f"not ( {inner} )" if isinstance(t[1], tuple) and t[1][0] != "not" else f"not {inner}"
    left, right = (_render_bool(c, rng, top=False) for c in t[1:])
    left = f"( {left} )" if isinstance(t[1], tuple) and t[1][0] != "not" else left
    right = f"( {right} )" if isinstance(t[2], tuple) and t[2][0] != "not" else right
    return f"{left} {t[0]} {right}"


def _eval_bool(t, steps: list[str]) -> bool:
    if isinstance(t, bool):
        return t
    if t[0] == "not":
        v = _eval_bool(t[1], steps)
        steps.append(f"not {v} = {not v}.")
        return not v
    a, b = _eval_bool(t[1], steps), _eval_bool(t[2], steps)
    v = (a and b) if t[0] == "and" else (a or b)
    steps.append(f"{a} {t[0]} {b} = {v}.")
    return v


def boolean_expressions(rng: random.Random) -> Problem:
    """'not ( True ) and ( False or True ) is' -> True / False."""
    while True:
        tree = _bool_tree(rng, rng.randint(1, 3))
        if isinstance(tree, tuple):
            break
    expr = _render_bool(tree, rng)
    steps: list[str] = ["Evaluate the innermost parts first."]
    value = _eval_bool(tree, steps)
    assert eval(expr) == value, expr  # noqa: S307 -- only True/False/and/or/not/parentheses.
    phrasings = (
        f"{expr} is",
        f"Evaluate the boolean expression: {expr}",
        f"What is the value of {expr}? Answer True or False.",
    )
    key = "bool|" + repr(tree)  # The tree, not its (randomly decorated) rendering.
    return Problem("boolean_expressions", key, phrasings[0], str(value), tuple(steps), phrasings)


# --------------------------------------------------------------------------- date understanding

_OFFSETS = (
    ("tomorrow", 1),
    ("yesterday", -1),
    ("one week from today", 7),
    ("one week ago", -7),
)


def _date(d: datetime.date) -> str:
    return d.strftime("%m/%d/%Y")


def date_understanding(rng: random.Random) -> Problem:
    """'Today is 03/15/2021. What is the date 10 days from today in MM/DD/YYYY?' with options -> '(B)'."""
    today = datetime.date(1990, 1, 1) + datetime.timedelta(days=rng.randint(0, 365 * 40))
    if rng.random() < 0.4:
        phrase, delta = rng.choice(_OFFSETS)
    else:
        n = rng.randint(2, 30)
        delta = n if rng.random() < 0.5 else -n
        phrase = f"{n} days from today" if delta > 0 else f"{n} days ago"
    answer = today + datetime.timedelta(days=delta)
    candidates = [
        answer + datetime.timedelta(days=1),
        answer - datetime.timedelta(days=1),
        today - datetime.timedelta(days=delta),
        answer.replace(year=answer.year + 1)
        if not (answer.month == 2 and answer.day == 29)
        else answer + datetime.timedelta(days=366),
        answer.replace(year=answer.year - 1)
        if not (answer.month == 2 and answer.day == 29)
        else answer - datetime.timedelta(days=365),
        answer + datetime.timedelta(days=30),
    ]
    distractors = []
    for c in rng.sample(candidates, len(candidates)):
        if c != answer and c not in distractors:
            distractors.append(c)
    options = [answer] + distractors[: rng.randint(3, 4)]
    rng.shuffle(options)
    letters = "ABCDEF"
    correct = letters[options.index(answer)]
    listing = "\n".join(f"({letters[i]}) {_date(d)}" for i, d in enumerate(options))
    question = f"Today is {_date(today)}. What is the date {phrase} in MM/DD/YYYY?"
    direction = "later" if delta > 0 else "earlier"
    steps = (
        f"Today is {_date(today)}.",
        f"The question asks for the date {abs(delta)} day{'s' if abs(delta) > 1 else ''} {direction}, "
        f"which is {_date(answer)}.",
        f"Among the options, ({correct}) is {_date(answer)}.",
    )
    phrasings = (
        f"{question}\nOptions:\n{listing}",
        f"Q: {question}\nOptions:\n{listing}\nA:",
        f"Answer the following multiple-choice question. {question}\nOptions:\n{listing}",
    )
    key = f"date|{_date(today)}|{delta}"
    return Problem("date_understanding", key, phrasings[0], f"({correct})", steps, phrasings, multiple_choice=True)


# --------------------------------------------------------------------------- registry

GENERATORS: dict[str, Callable[[random.Random], Problem]] = {
    "multistep_arithmetic_two": multistep_arithmetic_two,
    "web_of_lies": web_of_lies,
    "word_sorting": word_sorting,
    "object_counting": object_counting,
    "navigate": navigate,
    "boolean_expressions": boolean_expressions,
    "date_understanding": date_understanding,
}
# Kind -> FLAN sub-collection whose role it plays (ids get that sub-collection's prefix).
KIND_COLLECTION: dict[str, str] = {
    "multistep_arithmetic_two": "cot",
    "web_of_lies": "cot",
    "word_sorting": "niv2",
    "object_counting": "t0",
    "navigate": "t0",
    "boolean_expressions": "flan2021",
    "date_understanding": "flan2021",
}
KINDS = tuple(GENERATORS)


def sample_problems(
    kind: str, count: int, rng: random.Random, *, for_eval: bool, exclude: set[str] | None = None
) -> list[Problem]:
    """`count` distinct problems of `kind` from the evaluation bucket (for_eval) or the training bucket.

    Args:
      exclude: keys not to return (updated with the returned keys).
    """
    exclude = set() if exclude is None else exclude
    out: list[Problem] = []
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 200 * count + 1000:
            raise RuntimeError(f"could not draw {count} distinct {kind} problems")
        p = GENERATORS[kind](rng)
        if p.key in exclude or is_eval_key(p.key) != for_eval:
            continue
        exclude.add(p.key)
        out.append(p)
    return out
