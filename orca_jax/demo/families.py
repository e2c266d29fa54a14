"""Procedurally generated query families whose worked solutions are chains of local steps.

Six families, each named after the BIG-Bench Hard task whose input and answer format it
copies, so the project's BBH evaluator scores them unchanged (answer types in brackets):

  family               [type]    one step of the expert trace                      sub-collection
  multi_digit_addition [number]  add the last digits of two digit lists and a carry  cot
  web_of_lies          [label]   the next person's truth from the previous one's     cot
  dyck_languages       [dyck]    push or pop one bracket on the written stack        niv2
  object_counting      [number]  add one item's count to the running count           t0
  navigate             [label]   move the running (x, y) by one instruction          t0
  boolean_expressions  [label]   evaluate the leftmost innermost operator            flan2021

A `Problem` carries a canonical `key` (the instance regardless of wording), the BBH-format
input, the target, the expert's complete trace (`steps`), the assistant's shorter trace
(`brief`: steps skipped), a plausible wrong answer (`wrong`), and training phrasings.

`level` is "train" (training and in-distribution held-out sizes) or "ood" (longer chains,
more digits, deeper expressions than any training query: the out-of-distribution split).

Dropped from the earlier demo because no condition learns them at this model size (4
layers, minutes of CPU): word_sorting (every step compares words globally, letter by
letter) and date_understanding (calendar arithmetic with month lengths in one step).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Callable

ANSWER_PREFIX = "So the answer is "
EVAL_BUCKETS = 10  # One problem key in EVAL_BUCKETS is reserved for held-out evaluation.
LEVELS = ("train", "ood")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem instance (see the module doc)."""

    kind: str
    key: str
    bbh_input: str
    target: str
    steps: tuple[str, ...]
    brief: tuple[str, ...]
    wrong: str
    phrasings: tuple[str, ...]

    def explained(self, steps: tuple[str, ...] | None = None, answer: str | None = None) -> str:
        """A worked answer: `steps` (default: the expert's) then 'So the answer is {answer}.'."""
        lines = self.steps if steps is None else steps
        return "\n".join(lines + (f"{ANSWER_PREFIX}{self.target if answer is None else answer}.",))


def is_eval_key(key: str) -> bool:
    """True for the 1/EVAL_BUCKETS of problem keys reserved for held-out evaluation."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % EVAL_BUCKETS == 0


def extract_answer(text: str) -> str | None:
    """The final answer of a worked response ('... So the answer is X.' -> 'X'), else None."""
    i = text.rfind(ANSWER_PREFIX)
    if i < 0:
        return None
    answer = text[i + len(ANSWER_PREFIX) :].strip()
    return answer[:-1] if answer.endswith(".") else answer


def _every_other(steps: list[str]) -> tuple[str, ...]:
    """The assistant's skipping: the first step, every second one after it, and the last."""
    kept = [s for i, s in enumerate(steps) if i % 2 == 0]
    if steps and kept[-1] != steps[-1]:
        kept.append(steps[-1])
    return tuple(kept)


# --------------------------------------------------------------------------- addition


def multi_digit_addition(rng: random.Random, level: str) -> Problem:
    """'What is 128 + 367?' with a scratchpad in the spirit of Lee et al. (2023): each line adds
    the last digits of what is left of both numbers and the carry, and writes the digits so far."""
    lo, hi = (2, 3) if level == "train" else (4, 4)
    a, b = (rng.randint(10 ** (nd - 1), 10**nd - 1) for nd in (rng.randint(lo, hi), rng.randint(lo, hi)))
    xs, ys = str(a), str(b)
    steps, brief, written, carry = [], [], "", 0
    while xs or ys:
        x, y = int((xs or "0")[-1]), int((ys or "0")[-1])
        s = x + y + carry
        head = f"{xs or 0} + {ys or 0}, carry {carry}: {x} + {y} + {carry} = {s}"
        brief.append(f"{x} + {y} + {carry} = {s}.")
        written = str(s % 10) + written
        xs, ys, carry = xs[:-1], ys[:-1], s // 10
        steps.append(f"{head}, digits {written}, carry {carry}.")
    if carry:
        written = str(carry) + written
        steps.append(f"carry {carry}: digits {written}.")
    target = str(a + b)
    assert written == target
    wrong = str(a + b + rng.choice((-10, -1, 1, 10)))
    phrasings = (f"What is {a} + {b}?", f"Add {a} and {b}.", f"Compute the value of {a} + {b}.")
    brief_steps = ("Adding the digits from the right: " + " ".join(brief),)
    return Problem(
        "multi_digit_addition",
        f"add|{min(a, b)}|{max(a, b)}",
        phrasings[0],
        target,
        tuple(steps),
        brief_steps,
        wrong,
        phrasings,
    )


# --------------------------------------------------------------------------- web of lies

_NAMES = tuple(
    sorted(
        set(
            (
                "Sherrie Vernell Alexis Michaela Elanor Fidel Kandi Rashida Jerry Millie Ryan Jamey Amberly Shenna Delfina "
                "Leda Gwenn Jaymie Crista Christie Antwan Audrie Bernita Lorine Vina Willian Osvaldo Teressa Inga Alejandro "
                "Maybelle Dallas Helene Sal Jim Phoebe Shaunda Tamika Raymond Yoland Andree Marty"
            ).split()
        )
    )
)


def web_of_lies(rng: random.Random, level: str) -> Problem:
    """A chain of people vouching for or accusing the previous one; does the last tell the truth?"""
    names = rng.sample(_NAMES, rng.randint(3, 5) if level == "train" else rng.randint(7, 8))
    state = rng.random() < 0.5
    first = f"{names[0]} {'tells the truth' if state else 'lies'}."
    statements, steps = [first], [first]
    for prev, name in zip(names, names[1:]):
        claims_truth = rng.random() < 0.5
        claim = "tells the truth" if claims_truth else "lies"
        statements.append(f"{name} says {prev} {claim}.")
        state = claims_truth == state
        steps.append(f"{name} says {prev} {claim}, so {name} {'tells the truth' if state else 'lies'}.")
    body = " ".join(statements)
    question = f"Does {names[-1]} tell the truth?"
    target = "Yes" if state else "No"
    phrasings = (
        f"Question: {body} {question}",
        f"{body} {question}",
        f"Each person below either always tells the truth or always lies. {body} {question}",
    )
    brief = tuple(
        s.split(", ")[-1][0].upper() + s.split(", ")[-1][1:] if ", so " in s else s for s in _every_other(steps)
    )
    return Problem(
        "web_of_lies", "lies|" + body, phrasings[0], target, tuple(steps), brief, "No" if state else "Yes", phrasings
    )


# --------------------------------------------------------------------------- dyck languages

_PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}


def _stack(stack: list[str]) -> str:
    return " ".join(stack) if stack else "empty"


def dyck_languages(rng: random.Random, level: str) -> Problem:
    """Complete a bracket sequence; the trace keeps the stack after every bracket, then pops it."""
    n = rng.randint(4, 8) if level == "train" else rng.randint(11, 12)
    depth_cap = 4 if level == "train" else 6
    seq: list[str] = []
    stack: list[str] = []
    while len(seq) < n or not stack:
        if stack and (len(stack) >= depth_cap or rng.random() < 0.4) and len(seq) < n - 1:
            seq.append(_PAIRS[stack.pop()])
        else:
            opener = rng.choice(tuple(_PAIRS))
            seq.append(opener)
            stack.append(opener)
    stack = []
    steps = []
    for c in seq:
        if c in _PAIRS:
            stack.append(c)
        else:
            stack.pop()
        steps.append(f"{c} : stack {_stack(stack)}")
    opened = list(stack)
    closers = []
    while stack:
        closers.append(_PAIRS[stack.pop()])
        steps.append(f"close {closers[-1]} : stack {_stack(stack)}")
    target = " ".join(closers)
    text = " ".join(seq)
    wrong = " ".join(closers[:-1]) if len(closers) > 1 else " ".join(closers + [_PAIRS[rng.choice(tuple(_PAIRS))]])
    phrasings = (
        f"Complete the rest of the sequence, making sure that the parentheses are closed properly. Input: {text}",
        f"Close every open bracket of this sequence, in the right order. Input: {text}",
    )
    brief = (f"Still open: {' '.join(opened)}",)
    return Problem("dyck_languages", "dyck|" + text, phrasings[0], target, tuple(steps), brief, wrong, phrasings)


# --------------------------------------------------------------------------- object counting

_CATEGORIES: dict[str, tuple[tuple[str, str], ...]] = {
    "fruits": (
        ("apple", "apples"),
        ("banana", "bananas"),
        ("peach", "peaches"),
        ("plum", "plums"),
        ("grape", "grapes"),
        ("orange", "oranges"),
        ("strawberry", "strawberries"),
    ),
    "vegetables": (
        ("carrot", "carrots"),
        ("potato", "potatoes"),
        ("onion", "onions"),
        ("cabbage", "cabbages"),
        ("yam", "yams"),
        ("lettuce head", "lettuce heads"),
        ("stalk of celery", "stalks of celery"),
    ),
    "animals": (
        ("cat", "cats"),
        ("dog", "dogs"),
        ("goat", "goats"),
        ("rabbit", "rabbits"),
        ("mouse", "mice"),
        ("snake", "snakes"),
        ("pig", "pigs"),
    ),
    "musical instruments": (
        ("piano", "pianos"),
        ("flute", "flutes"),
        ("violin", "violins"),
        ("drum", "drums"),
        ("trumpet", "trumpets"),
        ("clarinet", "clarinets"),
    ),
}
_COUNT_WORDS = {1: "a", 2: "two", 3: "three", 4: "four", 5: "five"}


def _phrase(item: tuple[str, str], count: int) -> str:
    if count > 1:
        return f"{_COUNT_WORDS[count]} {item[1]}"
    return f"{'an' if item[0][0] in 'aeiou' else 'a'} {item[0]}"


def object_counting(rng: random.Random, level: str) -> Problem:
    """'I have a, two b, ... How many fruits do I have?' with a running count over the items."""
    n = rng.randint(3, 6) if level == "train" else rng.randint(8, 10)
    category = rng.choice(sorted(_CATEGORIES))
    others = [c for c in sorted(_CATEGORIES) if c != category]
    pool = [(item, category) for item in _CATEGORIES[category]] + [
        (item, c) for c in rng.sample(others, 1) for item in _CATEGORIES[c]
    ]
    picked = rng.sample(pool, min(n, len(pool)))
    if all(c != category for _, c in picked):
        picked[0] = (rng.choice(_CATEGORIES[category]), category)
    counts = [rng.choice((1, 1, 2, 3, 4, 5)) for _ in picked]
    phrases = [_phrase(item, k) for (item, _), k in zip(picked, counts)]
    listing = ", ".join(phrases[:-1]) + f", and {phrases[-1]}"
    question = f"I have {listing}. How many {category} do I have?"
    running, steps, parts = 0, [], []
    for phrase, (_, c), k in zip(phrases, picked, counts):
        if c == category:
            running += k
            parts.append(str(k))
            steps.append(f"{phrase}: {k}, so far {running}.")
        else:
            steps.append(f"{phrase}: not {category}, so far {running}.")
    target = str(running)
    brief = (" + ".join(parts) + f" = {running}." if len(parts) > 1 else f"Only {parts[0]}.",)
    phrasings = (question, f"Count the {category}. I have {listing}.")
    key = "count|" + category + "|" + "|".join(sorted(phrases))
    return Problem(
        "object_counting", key, question, target, tuple(steps), brief, str(running + rng.choice((-1, 1, 2))), phrasings
    )


# --------------------------------------------------------------------------- navigate

_MOVES = {"forward": (0, 1), "backward": (0, -1), "left": (-1, 0), "right": (1, 0)}


def _closing_moves(moves: list[tuple[str, int]], rng: random.Random) -> list[tuple[str, int]]:
    """Two moves that bring `moves` back to (0, 0) (one per nonzero axis, else one split in two)."""
    x = sum(_MOVES[d][0] * k for d, k in moves)
    y = sum(_MOVES[d][1] * k for d, k in moves)
    out = []
    if x:
        out.append(("left" if x > 0 else "right", abs(x)))
    if y:
        out.append(("backward" if y > 0 else "forward", abs(y)))
    if len(out) == 1 and out[0][1] >= 2:
        d, k = out[0]
        cut = rng.randint(1, k - 1)
        out = [(d, cut), (d, k - cut)]
    if not out:
        d, k = rng.choice(sorted(_MOVES)), rng.randint(1, 9)
        back = {"left": "right", "right": "left", "forward": "backward", "backward": "forward"}[d]
        out = [(d, k), (back, k)]
    return out


def navigate(rng: random.Random, level: str) -> Problem:
    """'Always face forward. Take 3 steps left. ...' Do you return to the start? Running (x, y)."""
    n = rng.randint(3, 5) if level == "train" else rng.randint(7, 8)
    home = rng.random() < 0.5
    while True:
        moves = [(rng.choice(sorted(_MOVES)), rng.randint(1, 9)) for _ in range(n - 2 if home else n)]
        if home:
            moves += _closing_moves(moves, rng)
        x = sum(_MOVES[d][0] * k for d, k in moves)
        y = sum(_MOVES[d][1] * k for d, k in moves)
        if len(moves) == n and ((x, y) == (0, 0)) == home and all(1 <= k <= 9 for _, k in moves):
            break
    rng.shuffle(moves)
    x = y = 0
    steps = ["Start at (0, 0)."]
    instructions = []
    for d, k in moves:
        instructions.append(f"Take {k} step{'s' if k > 1 else ''} {d}.")
        x, y = x + _MOVES[d][0] * k, y + _MOVES[d][1] * k
        steps.append(f"{k} {d}: ({x}, {y}).")
    home = (x, y) == (0, 0)
    steps.append(f"End at ({x}, {y}), {'the start' if home else 'not the start'}.")
    body = "Always face forward. " + " ".join(instructions)
    target = "Yes" if home else "No"
    phrasings = (
        f"If you follow these instructions, do you return to the starting point? {body}\nOptions:\n- Yes\n- No",
        f"{body} Are you back where you started?",
    )
    brief = tuple(s for s in _every_other(steps))
    return Problem(
        "navigate", "nav|" + body, phrasings[0], target, tuple(steps), brief, "No" if home else "Yes", phrasings
    )


# --------------------------------------------------------------------------- boolean expressions

BoolTree = bool | tuple


def _bool_tree(rng: random.Random, ops: int) -> BoolTree:
    """A random tree with `ops` binary operators; `not` on some leaves and subtrees."""
    if ops == 0:
        leaf: BoolTree = rng.random() < 0.5
        return ("not", leaf) if rng.random() < 0.3 else leaf
    left = rng.randint(0, ops - 1)
    node: BoolTree = (rng.choice(("and", "or")), _bool_tree(rng, left), _bool_tree(rng, ops - 1 - left))
    return ("not", node) if rng.random() < 0.15 else node


def _render(t: BoolTree, top: bool = True) -> str:
    if isinstance(t, bool):
        return str(t)
    if t[0] == "not":
        return "not " + _render(t[1], top=False)
    text = f"{_render(t[1], False)} {t[0]} {_render(t[2], False)}"
    return text if top else f"( {text} )"


def _reduce_once(t: BoolTree) -> BoolTree:
    """Evaluate the leftmost operator whose operands are all values."""
    if isinstance(t, bool):
        return t
    if t[0] == "not":
        return (not t[1]) if isinstance(t[1], bool) else ("not", _reduce_once(t[1]))
    op, a, b = t
    if isinstance(a, bool) and isinstance(b, bool):
        return (a and b) if op == "and" else (a or b)
    if not isinstance(a, bool):
        return (op, _reduce_once(a), b)
    return (op, a, _reduce_once(b))


def boolean_expressions(rng: random.Random, level: str) -> Problem:
    """'not ( True and False ) or True is' reduced one innermost operator per line."""
    t = _bool_tree(rng, rng.randint(1, 3) if level == "train" else 4)
    expr = _render(t)
    steps = []
    while not isinstance(t, bool):
        t = _reduce_once(t)
        steps.append(f"= {_render(t)}")
    target = str(t)
    phrasings = (f"{expr} is", f"Evaluate the boolean expression: {expr}")
    return Problem(
        "boolean_expressions",
        "bool|" + expr,
        phrasings[0],
        target,
        tuple(steps),
        _every_other(steps),
        str(not t),
        phrasings,
    )


# --------------------------------------------------------------------------- registry

GENERATORS: dict[str, Callable[[random.Random, str], Problem]] = {
    "multi_digit_addition": multi_digit_addition,
    "web_of_lies": web_of_lies,
    "dyck_languages": dyck_languages,
    "object_counting": object_counting,
    "navigate": navigate,
    "boolean_expressions": boolean_expressions,
}
KIND_COLLECTION: dict[str, str] = {
    "multi_digit_addition": "cot",
    "web_of_lies": "cot",
    "dyck_languages": "niv2",
    "object_counting": "t0",
    "navigate": "t0",
    "boolean_expressions": "flan2021",
}
KINDS = tuple(GENERATORS)


def sample_problems(
    kind: str,
    n: int,
    rng: random.Random,
    *,
    for_eval: bool,
    level: str = "train",
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[Problem]:
    """`n` distinct problems of `kind` at `level`, from the evaluation key bucket iff `for_eval`."""
    if level not in LEVELS:
        raise ValueError(f"level={level!r}; expected one of {LEVELS}")
    out: dict[str, Problem] = {}
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n + 1000:
            raise RuntimeError(f"could not draw {n} distinct {kind} problems")
        p = GENERATORS[kind](rng, level)
        if p.key in out or p.key in exclude or is_eval_key(p.key) != for_eval:
            continue
        out[p.key] = p
    return list(out.values())
