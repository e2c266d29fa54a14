"""The zero-shot prompt of every evaluated task: the one place that defines them.

As in the paper: one user turn in the chat template the student was trained with
(orca_jax.data.prompts), the empty system message by default (any of the 16 can be
selected by id), no few-shot examples, and no chain-of-thought cue.

User message per task family:

* BBH-format tasks (the public BBH and custom directories): the example's `input`
  verbatim. BBH inputs already carry their options ("Options:\\n(A) ...").
* AGIEval multiple choice: AGIEval's own zero-shot English format (the one its authors
  used for ChatGPT/GPT-4), with options re-labelled "(A)text" (loaders.py explains why)::

      {passage}Q: {question} Answer Choices: (A){a} (B){b} ...
      A: Among A through {last letter}, the answer is

* AGIEval math cloze: the same, with the cloze cue::

      {passage}Q: {question}
      A: The answer is

  `{passage}` is the passage text as written (AGIEval puts "Q:" right after it), or
  nothing when there is no passage.
"""

from __future__ import annotations

from orca_jax.data import prompts as chat
from orca_jax.data.system_messages import system_message
from orca_jax.evaluation import answer_types as at
from orca_jax.evaluation.loaders import Example

BBH_FORMAT = "{input}"
AGIEVAL_MC_FORMAT = "{passage}Q: {question} Answer Choices: {options}\nA: Among A through {last}, the answer is"
AGIEVAL_CLOZE_FORMAT = "{passage}Q: {question}\nA: The answer is"


def user_format(example: Example) -> str:
    """The format string of the example's user message (written into results.json)."""
    if example.benchmark == "agieval":
        return AGIEVAL_MC_FORMAT if example.answer_type == at.MULTIPLE_CHOICE else AGIEVAL_CLOZE_FORMAT
    return BBH_FORMAT


def user_message(example: Example) -> str:
    """The user turn for one example."""
    fmt = user_format(example)
    if fmt == BBH_FORMAT:
        return fmt.format(input=example.question)
    return fmt.format(
        passage=example.passage or "",
        question=example.question,
        options=" ".join(f"({letter}){text}" for letter, text in example.options),
        last=example.options[-1][0] if example.options else "",
    )


def resolve_template(template: str | None) -> str:
    """The chat template name: `template`, else the gin binding of render_prompt (training's)."""
    return chat.prompt_settings(template)[0]


def render(example: Example, template: str, system_message_id: int = 1, omit_empty_system: bool | None = None) -> str:
    """The full model input text (before BOS, if the tokenizer has one) for one example.

    `omit_empty_system`: as the checkpoint was trained (its model card); None: render_prompt's gin binding.
    """
    kwargs = {} if omit_empty_system is None else {"omit_empty_system": omit_empty_system}
    return chat.render_prompt(system_message(system_message_id), user_message(example), template=template, **kwargs)


def stop_strings(template: str) -> tuple[str, ...]:
    """Strings at which a generation is cut before extraction (the template's turn markers)."""
    from orca_jax.evaluation.extraction import DEFAULT_STOP_STRINGS

    return tuple(dict.fromkeys(chat.get_template(template).stop_strings + DEFAULT_STOP_STRINGS))


def prompt_description(
    example: Example, template: str, system_message_id: int, omit_empty_system: bool | None = None
) -> dict:
    """What results.json records about a task's prompt."""
    return {
        "chat_template": template,
        "system_message_id": system_message_id,
        "system_message": system_message(system_message_id),
        "user_format": user_format(example),
        "first_prompt": render(example, template, system_message_id, omit_empty_system),
    }
