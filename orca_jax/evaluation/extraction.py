"""Answer extraction: from a model's free-form output to one answer that can be compared.

Zero-shot outputs of a chat model are sentences, not bare answers, so each answer type has
its own extractor. Each tries its rules in order and the first rule that finds an answer
wins. When no rule finds one, the extractor returns None ("unparseable"); that counts as
wrong, and the raw text is kept in the predictions file.

Before extraction the output is cleaned (`clean_output`): it is cut at the first stop
string (a chat turn marker such as "<|im_end|>" or "### User:") and markdown emphasis
(`**`, `__`, backticks) is removed.

Strong answer markers, checked first for every type, are phrases such as "the answer is",
"Answer:", "the correct option is", "I would choose", "evaluates to", and "(B) is correct". The text after
a marker is read with the type's rules. A dash after a marker is a separator only when a space
follows it ("The answer is - 7"); otherwise it is the answer's minus sign ("The answer is -\\frac{7}{9}").
A sentence ends at ".", "!" or "?" before a space (an ellipsis "..." does not end one) or at a
line break.

| type | rules, in order | compared |
|---|---|---|
| multiple_choice | 1. marker followed by a valid letter ("The answer is (B)", "Answer: B") or by an option's text; 2. a leading letter: "(B) ...", "B)", "B.", "B:", "B", or "B <option B's text>", unless its first clause rejects it ("(A) is wrong because ..."; "(B) heptagon, not (C) hexagon" still picks B); 3. the last sentence that names exactly one option where the clause naming it affirms it ("(C) is right", "(E) fits") or holds a conclusion cue ("..., so (D)") and has no negation ("not", "wrong", "incorrect", "ruled out", ...); 4. "option B" / "choice (B)" (the letter right after the word) in a clause without a negation; 5. the only distinct "(X)" in the text; 6. restated option text: the output equals one option's text, or exactly one option's text appears in the first sentence (else in the whole text). Clauses split at ",", ";", ":" and "because", "since", "but", "while", "whereas", "although". Hedges ("(A) or (C)") stay unparseable | letter == gold letter |
| label (True/False, Yes/No, valid/invalid) | 1. marker followed by a label; 2. the first word is a label; 3. the first sentence ends with a label ("... is False.", not "... True or False."); 4. exactly one distinct label in the first sentence, then in the last sentence, then in the whole text (whole words only, so "valid" does not match "invalid"); 5. for Yes/No, "plausible" means yes and "implausible" no. In every rule a negation right before the word ("not X", "never X", "isn't X") gives X's complement: "not valid" is invalid, "not implausible" is yes | case-insensitive equality |
| number | 1. the first number after a marker (also "result is", "total is", "equals"); 2. an output that is only a number; 3. the number after the last "="; 4. the number a concluding clause states: sentences from the last, and in each its conclusion cues ("so", "therefore", "thus", "hence", "in total", "altogether", "which makes", ...) from the last; the first number after the cue, else the last number before it in the same clause ("..., so you have 7 objects in total" gives 7, not 3); 5. the first number (digits or a number word up to "twenty") in the first sentence, then in the whole text (answer-first outputs: "You have 8 instruments. ..."). Digits win over number words in rule 4. Thousands separators and a unicode minus are accepted | numeric equality |
| word_list | the text after the last marker or colon (else the whole output) split into words; only words that occur in the question's list (the text after its last colon) are kept, in their order | the space-joined words equal the target |
| dyck | the bracket characters after the last marker or colon (else in the first line). If the output restates the input sequence first, that prefix is removed | bracket sequence equality, spaces ignored |
| math (AGIEval cloze) | 1. the last `\\boxed{...}`; 2. the text after a marker, up to the end of the sentence; 3. the last `$...$`; 4. an output that is one line of math (no run of three words); 5. the last number | normalised strings equal, or both parse to numbers that are equal (within 1e-6). Normalisation strips `$`, `\\left`/`\\right`, spacing commands, `\\text{...}` units, degrees and `%`, and a leading `x =` (an answer that is all `\\text{...}` keeps its text); it rewrites `\\dfrac`/`\\tfrac` to `\\frac`, and `\\frac{a}{b}` and `\\frac12` to `a/b` |
| free_text | the text after a marker, else the first line, up to the end of the sentence | normalised equality: lower case, outer punctuation and quotes stripped, spaces collapsed |
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from orca_jax.evaluation import answer_types as at

DEFAULT_STOP_STRINGS: tuple[str, ...] = (
    "<|im_end|>",
    "<|im_start|>",
    "<|endoftext|>",
    "</s>",
    "### User:",
    "### System:",
    "### Human:",
)

_STRONG_MARKERS = re.compile(
    r"(?i:\banswer\b\s*(?:is|would\s+be|should\s+be|will\s+be|must\s+be)?\s*(?:therefore|thus)?\s*(?:[:=–]|-(?=\s))?"
    r"|\b(?:correct|right|best)\s+(?:option|choice|response)\b\s*(?:is|would\s+be|should\s+be)?\s*(?:[:=–]|-(?=\s))?"
    r"|\bI\s+(?:would\s+|will\s+|'d\s+)?(?:choose|pick|select|go\s+with)\b"
    r"|\b(?:result|total|sum|count)\s+(?:is|would\s+be|=)"
    r"|\bequals\b|\bevaluates?\s+to\b|\bsimplifies\s+to\b)"
)
_REVERSED_MARKER = re.compile(
    r"(?:\(([A-Z])\)|\b([A-Z])\b)\s+is\s+(?:the\s+)?(?:correct|right|best)(?:\s+(?:answer|option|choice))?\b"
)
# "option B" / "choice (B)": the letter follows the word directly ("each option: (A) ..." lists).
_WEAK_MARKER = re.compile(r"(?i:\b(?:option|choice)\b)\s+[\(\[]?([A-Z])[\)\]]?(?![A-Za-z0-9])")
# A sentence that rejects what it names, one that affirms it, and one that concludes.
_NEGATION = re.compile(
    r"(?i)\b(?:not|never|no\s+longer|wrong|incorrect|false|untrue|eliminated?|ruled?\s+out|"
    r"cannot|can't|isn't|aren't|doesn't|does\s+not)\b"
)
_AFFIRMATION = re.compile(r"(?i)\b(?:correct|right|true|best|answer|matches|fits|consistent)\b")
_CONCLUSION = re.compile(
    r"(?i)\b(?:so|therefore|thus|hence|consequently|in\s+conclusion|overall|finally|"
    r"in\s+total|total|altogether|in\s+all|(?:which|that|this)\s+(?:makes|gives|means|leaves))\b"
)
_CLAUSE_END = re.compile(r"[,;:](?=\s)")
_SUBCLAUSE = re.compile(r"[,;:]\s+|\s+(?i:because|since|but|while|whereas|although)\s+")
_LETTER_AFTER = re.compile(r"^\s*(?:(?i:option|choice)\s*)?[:\-]?\s*[\(\[]?([A-Z])[\)\]]?(?![A-Za-z0-9])")
_PAREN_LETTER = re.compile(r"\(([A-Z])\)")
_NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|(?<![\w.])-?\d+(?:\.\d+)?")
_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_NUMBER_WORD = re.compile(r"(?i)\b(" + "|".join(_NUMBER_WORDS) + r")\b")
_BRACKETS = "()[]{}<>"
_SENTENCE_END = re.compile(r"(?<=[.!?])(?<!\.\.\.)\s+|\n")  # an ellipsis ("...") ends no sentence
_YES_NO_SYNONYMS = {"plausible": "yes", "implausible": "no"}
_NEGATED = r"(\b(?:not|never)\s+|n't\s+)?"  # "not X", "isn't X": X's complement


def clean_output(text: str, stop_strings: Iterable[str] = DEFAULT_STOP_STRINGS) -> str:
    """Cut `text` at the first stop string and remove markdown emphasis."""
    for stop in stop_strings:
        cut = text.find(stop)
        if cut >= 0:
            text = text[:cut]
    text = re.sub(r"\*\*|__|`", "", text)
    return text.replace("−", "-").strip()


def _norm(text: str) -> str:
    """Lower case, spaces collapsed, outer punctuation and quotes stripped."""
    text = re.sub(r"\s+", " ", text.lower()).strip()
    return text.strip(" .,;:!?\"'“”‘’")


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def _first_sentence(text: str) -> str:
    parts = _sentences(text)
    return parts[0] if parts else ""


def _after_markers(text: str) -> list[str]:
    """The text after each strong answer marker, first marker first."""
    return [text[m.end() :] for m in _STRONG_MARKERS.finditer(text)]


# ---------------------------------------------------------------------------------------
# multiple choice
# ---------------------------------------------------------------------------------------


def _option_at_start(segment: str, options: Mapping[str, str]) -> str | None:
    """The letter whose (longest) option text the segment starts with."""
    seg = _norm(segment)
    best = None
    for letter, text in options.items():
        t = _norm(text)
        if t and (seg == t or (seg.startswith(t) and not seg[len(t) : len(t) + 1].isalnum())):
            if best is None or len(t) > len(_norm(options[best])):
                best = letter
    return best


def _options_mentioned(text: str, options: Mapping[str, str]) -> list[str]:
    """Letters whose option text occurs in `text` as whole words, contained texts dropped."""
    low = _norm(text)
    hits = {}
    for letter, option in options.items():
        t = _norm(option)
        if len(t) >= 3 and re.search(r"(?<!\w)" + re.escape(t) + r"(?!\w)", low):
            hits[letter] = t
    return sorted(l for l, t in hits.items() if not any(t != u and t in u for u in hits.values()))


def _letters_named(sentence: str, valid: set[str]) -> set[str]:
    """Valid letters a sentence names as "(B)", "option B" or "choice B"."""
    named = set(_PAREN_LETTER.findall(sentence)) | {m.group(1) for m in _WEAK_MARKER.finditer(sentence)}
    return named & valid


def _clause_of(sentence: str, pattern: re.Pattern) -> str:
    """The part of `sentence` (split at ",", ";", ":" and at "because", "since", "but", ...)
    where `pattern` first matches; "" when it does not."""
    for clause in _SUBCLAUSE.split(sentence):
        if pattern.search(clause):
            return clause
    return ""


def _affirmed_letter(text: str, valid: set[str]) -> str | None:
    """The letter of the last sentence that names exactly one option and, in the clause naming
    it, affirms it ("(C) is right", "(E) fits") or follows a conclusion cue ("..., so (D)")
    without rejecting it ("wrong", "not", "incorrect", "ruled out", ...)."""
    for sentence in reversed(_sentences(text)):
        named = _letters_named(sentence, valid)
        if len(named) != 1:
            continue
        letter = named.pop()
        clause = _clause_of(sentence, re.compile(rf"\({letter}\)|(?i:\b(?:option|choice)\b)\s+\(?{letter}\b"))
        if clause and not _NEGATION.search(clause) and (_AFFIRMATION.search(clause) or _CONCLUSION.search(clause)):
            return letter
    return None


def _leading_letter(stripped: str, valid: set[str], options: Mapping[str, str]) -> str | None:
    """ "(B) ...", "B)", "B.", "B:", "B", "B - ...", "B is ..." or "B <option B's text>" at the start."""
    if m := re.match(r"^\(([A-Z])\)", stripped):
        return m.group(1) if m.group(1) in valid else None
    if m := re.match(r"^([A-Z])(?:[).:,]|\s*$|\s+(?:-|–|is\b))", stripped):
        return m.group(1) if m.group(1) in valid else None
    if (m := re.match(r"^([A-Z])\s+(\S.*)", stripped, re.S)) and m.group(1) in valid and options:
        if _option_at_start(m.group(2), {m.group(1): options[m.group(1)]}) == m.group(1):
            return m.group(1)
    return None


def extract_choice(text: str, options: Mapping[str, str] | Sequence[tuple[str, str]] = ()) -> str | None:
    """The option letter the output picks (see the module table), or None."""
    options = dict(options)
    valid = set(options) or {chr(c) for c in range(ord("A"), ord("Z") + 1)}

    def letter_in(segment: str) -> str | None:
        m = _LETTER_AFTER.match(segment)
        if m and m.group(1) in valid:
            return m.group(1)
        return _option_at_start(segment, options) if options else None

    for segment in _after_markers(text):
        if (found := letter_in(segment)) is not None:
            return found
    if (m := _REVERSED_MARKER.search(text)) and (m.group(1) or m.group(2)) in valid:
        return m.group(1) or m.group(2)
    stripped = text.strip()
    leading = _leading_letter(stripped, valid, options)
    if leading is not None and not _NEGATION.search(_SUBCLAUSE.split(_first_sentence(stripped))[0]):
        return leading  # "(A) is wrong because ..." does not pick (A)
    if (found := _affirmed_letter(stripped, valid)) is not None:
        return found
    for sentence in _sentences(stripped):
        if (m := _WEAK_MARKER.search(sentence)) and m.group(1) in valid:
            if not _NEGATION.search(_clause_of(sentence, re.compile(re.escape(m.group(0))))):
                return m.group(1)
    letters = {l for l in _PAREN_LETTER.findall(text) if l in valid}
    if len(letters) == 1:
        return letters.pop()
    if options:
        if (found := _option_at_start(stripped, options)) is not None:
            return found
        for segment in (_first_sentence(stripped), stripped):
            hits = _options_mentioned(segment, options)
            if len(hits) == 1:
                return hits[0]
    return None


# ---------------------------------------------------------------------------------------
# closed label sets (True/False, Yes/No, valid/invalid)
# ---------------------------------------------------------------------------------------


def _labels_in(text: str, labels: Sequence[str]) -> list[str]:
    """Distinct labels (lower case) mentioned as whole words; "not X" / "isn't X" counts as X's
    complement. For Yes/No, "plausible" is yes and "implausible" no (each flipped by a negation)."""
    low = text.lower()
    lowered = [l.lower() for l in labels]
    found = []
    for m in re.finditer(_NEGATED + r"\b(" + "|".join(map(re.escape, lowered)) + r")\b", low):
        label = m.group(2)
        if m.group(1):
            label = at.LABEL_COMPLEMENTS.get(label, "")
        if label in lowered and label not in found:
            found.append(label)
    if not found and {"yes", "no"} <= set(lowered):
        for m in re.finditer(_NEGATED + r"\b(plausible|implausible)\b", low):
            label = _YES_NO_SYNONYMS[m.group(2)]
            label = at.LABEL_COMPLEMENTS[label] if m.group(1) else label
            if label not in found:
                found.append(label)
    return found


def extract_label(text: str, labels: Sequence[str]) -> str | None:
    """The label (lower case) the output gives, or None."""
    lowered = [l.lower() for l in labels]
    for segment in _after_markers(text):
        m = re.match(r"^\s*" + _NEGATED + r"([A-Za-z]+)", segment)
        if m:
            word = m.group(2).lower()
            if m.group(1):
                word = at.LABEL_COMPLEMENTS.get(word, "")
            if word in lowered:
                return word
    m = re.match(r"^[\s\"'“]*([A-Za-z]+)\b", text)
    if m and m.group(1).lower() in lowered:
        return m.group(1).lower()
    sentences = _sentences(text)
    m = re.search(r"(\b(?:or|and)\s+)?" + _NEGATED + r"\b([A-Za-z]+)\W*$", sentences[0]) if sentences else None
    if m and not m.group(1) and m.group(3).lower() in lowered:  # "not ( True ) and ( True ) is False."
        word = m.group(3).lower()
        return at.LABEL_COMPLEMENTS.get(word, "") if m.group(2) else word
    for segment in (sentences[:1] + sentences[-1:] + [text]) if sentences else []:
        found = _labels_in(segment, labels)
        if len(found) == 1:
            return found[0]
    return None


# ---------------------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------------------


def _number_value(token: str) -> float | None:
    token = token.strip().lower().replace(",", "")
    if token in _NUMBER_WORDS:
        return float(_NUMBER_WORDS[token])
    try:
        return float(token)
    except ValueError:
        return None


def _format_number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _edge_number(text: str, words: bool = True, last: bool = False) -> str | None:
    """The first (or `last`) number in `text`, digits or (with `words`) number words, formatted."""
    candidates = [(m.start(), m.group(0)) for m in _NUMBER.finditer(text)]
    if words:
        candidates += [(m.start(), m.group(1)) for m in _NUMBER_WORD.finditer(text)]
    if not candidates:
        return None
    return _format_number(_number_value((max if last else min)(candidates)[1]))


def _conclusion_number(text: str) -> str | None:
    """The number a concluding clause states. Sentences are read from the last; in a sentence,
    its conclusion cues ("so", "therefore", "in total", "which makes", ...) from the last: the
    first number after the cue, else the last number before it within its clause ("7 objects
    in total"; a clause ends at ",", ";" or ":"). Digits win over number words."""
    for sentence in reversed(_sentences(text)):
        for cue in reversed(list(_CONCLUSION.finditer(sentence))):
            clause_start = max((m.end() for m in _CLAUSE_END.finditer(sentence, 0, cue.start())), default=0)
            for words in (False, True):
                found = _edge_number(sentence[cue.end() :], words=words) or _edge_number(
                    sentence[clause_start : cue.start()], words=words, last=True
                )
                if found is not None:
                    return found
    return None


def extract_number(text: str) -> str | None:
    """The number the output gives, formatted canonically ("8", "-35", "2.5"), or None."""
    for segment in _after_markers(text):
        head = re.split(r"[\n]", segment, maxsplit=1)[0][:60]
        if (found := _edge_number(head)) is not None:
            return found
    if _NUMBER.fullmatch(text.strip().rstrip(".")):
        return _format_number(_number_value(text.strip().rstrip(".")))
    equals = list(re.finditer(r"=\s*(-?\d[\d,]*(?:\.\d+)?)", text))
    if equals:
        return _format_number(_number_value(equals[-1].group(1)))
    if (found := _conclusion_number(text)) is not None:
        return found
    for segment in (_first_sentence(text), text):
        if (found := _edge_number(segment)) is not None:
            return found
    return None


def numbers_equal(a: str, b: str) -> bool:
    va, vb = _number_value(a), _number_value(b)
    return va is not None and vb is not None and abs(va - vb) < 1e-9


# ---------------------------------------------------------------------------------------
# word lists and bracket sequences
# ---------------------------------------------------------------------------------------


def _answer_segment(text: str) -> str:
    """Text after the last strong marker, else after the last colon, else all of it."""
    markers = list(_STRONG_MARKERS.finditer(text))
    if markers:
        return text[markers[-1].end() :]
    if ":" in text:
        return text[text.rindex(":") + 1 :]
    return text


def list_vocabulary(question: str) -> set[str]:
    """The words of a sorting question's list: everything after its last colon."""
    tail = question[question.rindex(":") + 1 :] if ":" in question else question
    return {w.lower() for w in tail.split()}


def extract_word_list(text: str, vocabulary: set[str] | None = None) -> str | None:
    """The output's word list, space-joined in the output's order, or None."""
    words = [w.lower().strip(".,;:!?\"'()[]") for w in re.split(r"[\s,]+", _answer_segment(text))]
    words = [w for w in words if w and (w in vocabulary if vocabulary else not re.fullmatch(r"\d+\.?|[-*•]", w))]
    return " ".join(words) if words else None


def dyck_prefix(question: str) -> str:
    """The bracket characters of a Dyck question's input sequence (after "Input:")."""
    tail = question.split("Input:")[-1]
    return "".join(c for c in tail if c in _BRACKETS)


def extract_dyck(text: str, prefix: str = "") -> str | None:
    """The closing bracket sequence, space-separated ("] ) >"), or None."""
    has_marker = bool(_STRONG_MARKERS.search(text)) or ":" in text
    segment = _answer_segment(text) if has_marker else text.strip().split("\n")[0]
    brackets = "".join(c for c in segment if c in _BRACKETS)
    if prefix and brackets.startswith(prefix) and len(brackets) > len(prefix):
        brackets = brackets[len(prefix) :]
    return " ".join(brackets) if brackets else None


# ---------------------------------------------------------------------------------------
# math (AGIEval cloze)
# ---------------------------------------------------------------------------------------


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None


def normalize_math(answer: str) -> str:
    """Light normalisation of a LaTeX answer (see the module table)."""
    s = answer.strip().strip("$").strip()
    if m := re.fullmatch(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}\.?", s):
        return re.sub(r"\s+", " ", m.group(1)).strip().lower()
    s = re.sub(r"\\text\{\s*[a-zA-Z ]*\}|\\mbox\{[^}]*\}", "", s)
    s = re.sub(r"\\(?:left|right|displaystyle|!|,|;|:| )", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\^\{?\\circ\}?|°|\\%|%|\\\$", "", s)
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\1/\2", s)
    s = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"(\1)/(\2)", s)
    s = re.sub(r"\(([-\w.]+)\)/\(([-\w.]+)\)", r"\1/\2", s)
    s = re.sub(r"^[a-zA-Z]\s*=\s*", "", s)
    s = re.sub(r"\s+", "", s).rstrip(".")
    return s


def _math_value(s: str) -> float | None:
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?|-?\.\d+)(?:/(\d+(?:\.\d+)?))?", s.replace(",", ""))
    if not m:
        return None
    value = float(m.group(1))
    if m.group(2):
        if float(m.group(2)) == 0:
            return None
        value /= float(m.group(2))
    return value


def math_equal(a: str, b: str) -> bool:
    na, nb = normalize_math(a), normalize_math(b)
    if na == nb:
        return bool(na)
    va, vb = _math_value(na), _math_value(nb)
    return va is not None and vb is not None and abs(va - vb) < 1e-6


def extract_math(text: str) -> str | None:
    """The final answer of a math output (un-normalised), or None."""
    if (boxed := _last_boxed(text)) is not None:
        return boxed.strip()
    for segment in _after_markers(text):
        head = re.split(r"(?<=[^\d\\])\.(?:\s|$)|\n", segment.strip(), maxsplit=1)[0].strip()
        if head:
            return head.strip("$ ")
    dollars = re.findall(r"\$([^$]+)\$", text)
    if dollars:
        return dollars[-1].strip()
    stripped = text.strip()
    prose = re.search(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}\s+[A-Za-z]{2,}", re.sub(r"\\[A-Za-z]+", "", stripped))
    if stripped and "\n" not in stripped and not prose:
        return stripped.rstrip(".")
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


# ---------------------------------------------------------------------------------------
# free text
# ---------------------------------------------------------------------------------------


def extract_free_text(text: str) -> str | None:
    """The answer phrase of a free-form output, normalised, or None."""
    segments = _after_markers(text)
    segment = segments[0] if segments else text.strip().split("\n")[0]
    head = re.split(r"(?<=[.!?])\s", segment.strip(), maxsplit=1)[0]
    answer = _norm(head)
    return answer or None
