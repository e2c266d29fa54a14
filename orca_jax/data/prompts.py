"""Chat templates: how (system message, user query) become the model input and the response the target.

Two layouts, chosen by name (gin: `render_prompt.template = "instruct"`):

* ``"chatml"`` (default)::

      <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{user}<|im_end|>\\n<|im_start|>assistant\\n

* ``"instruct"`` (the OpenOrca/axolotl "### System:" layout)::

      ### System:\\n{system}\\n\\n### User:\\n{user}\\n\\n### Assistant:\\n

The rendered prompt is the model input (the tokenizer later puts BOS in front); the
target is the teacher's response verbatim, followed by EOS at tokenization. No
closing marker (`<|im_end|>`) is appended to the target: EOS ends the turn, and
generation stops at EOS.

Empty system message (Orca's message #1, ``""``): by default the whole system
block is left out, so the prompt starts at the user block, e.g. for ChatML
``<|im_start|>user\\n{user}<|im_end|>\\n<|im_start|>assistant\\n`` (axolotl's
behaviour for OpenOrca). With ``omit_empty_system=False`` the block is kept with
nothing inside: ``<|im_start|>system\\n<|im_end|>\\n<|im_start|>user\\n...``. A
system message of only whitespace counts as empty.

The markers are plain text: with LLaMA's tokenizer they become several ordinary
tokens (no vocabulary is added). This module must not import TensorFlow or SeqIO:
evaluation imports it to render zero-shot prompts.
"""

from __future__ import annotations

import dataclasses

import gin


@dataclasses.dataclass(frozen=True)
class ChatTemplate:
    """A single-turn chat layout as literal text pieces around the system and user messages."""

    name: str
    system_prefix: str
    system_suffix: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    # Strings that mark the start of a new turn: evaluation cuts generations there.
    stop_strings: tuple[str, ...] = ()

    def render(self, system: str, user: str, *, omit_empty_system: bool = True) -> str:
        """The model input for one (system, user) pair, ending where the response starts."""
        parts = []
        if system.strip() or not omit_empty_system:
            parts += [self.system_prefix, system, self.system_suffix]
        parts += [self.user_prefix, user, self.user_suffix, self.assistant_prefix]
        return "".join(parts)


CHATML = ChatTemplate(
    name="chatml",
    system_prefix="<|im_start|>system\n",
    system_suffix="<|im_end|>\n",
    user_prefix="<|im_start|>user\n",
    user_suffix="<|im_end|>\n",
    assistant_prefix="<|im_start|>assistant\n",
    stop_strings=("<|im_end|>", "<|im_start|>"),
)
INSTRUCT = ChatTemplate(
    name="instruct",
    system_prefix="### System:\n",
    system_suffix="\n\n",
    user_prefix="### User:\n",
    user_suffix="\n\n",
    assistant_prefix="### Assistant:\n",
    stop_strings=("\n### User:", "\n### System:", "### Assistant:"),
)
TEMPLATES: dict[str, ChatTemplate] = {t.name: t for t in (CHATML, INSTRUCT)}
DEFAULT_TEMPLATE = "chatml"


def get_template(name: str) -> ChatTemplate:
    """The template called `name` ('chatml' or 'instruct')."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown chat template {name!r}; choose one of {sorted(TEMPLATES)}") from None


@gin.configurable
def render_prompt(system: str, user: str, *, template: str = DEFAULT_TEMPLATE, omit_empty_system: bool = True) -> str:
    """Render a system message and a user query into the model input text.

    Args:
      system: the system message ('' for Orca's empty message #1).
      user: the user query (the FLAN question).
      template: template name; gin-configurable (`render_prompt.template`).
      omit_empty_system: leave out the system block when `system` is empty/blank.

    Returns:
      The prompt text, ending with the assistant header (the response follows it).
    """
    return get_template(template).render(system, user, omit_empty_system=omit_empty_system)


def prompt_settings(template: str | None = None, omit_empty_system: bool | None = None) -> tuple[str, bool]:
    """The (template, omit_empty_system) that `render_prompt` uses under the current gin config.

    Arguments given here win; unset ones come from `render_prompt`'s gin bindings
    (preprocessors.ExamplePreprocessor resolves them once, then renders with ChatTemplate.render).
    """
    if template is None:
        template = _gin_value("render_prompt.template", DEFAULT_TEMPLATE)
    if omit_empty_system is None:
        omit_empty_system = _gin_value("render_prompt.omit_empty_system", True)
    get_template(template)
    return template, bool(omit_empty_system)


def _gin_value(binding: str, default):
    try:
        return gin.query_parameter(binding)
    except ValueError:
        return default


def render_target(response: str) -> str:
    """The target text for a teacher response: the response itself (EOS is added as a token)."""
    return response


def render_example(system: str, user: str, response: str, *, template: str | None = None) -> tuple[str, str]:
    """(model input text, target text) for one training triple."""
    kwargs = {} if template is None else {"template": template}
    return render_prompt(system, user, **kwargs), render_target(response)
