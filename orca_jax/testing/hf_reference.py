"""A transformers reference for `orca-evaluate --metric=loglik|both` on BBH-format tasks (tests, parity checks).

For each row of an evaluation's predictions.jsonl it rebuilds the prompt independently of
orca-jax's renderer, with transformers' `apply_chat_template` and the generic ChatML
template (no system message: Orca's zero-shot message #1 is empty), scores every candidate
continuation with a `LlamaForCausalLM` in fp32 (sum of log-probabilities of its tokens),
and compares with the scores orca-jax wrote::

    python -m orca_jax.testing.hf_reference --hf_dir=HF_DIR --bbh_dir=BBH --predictions=OUT/predictions.jsonl

prints max |difference|, and how many examples choose the same option.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from orca_jax.evaluation import loaders, scoring

CHATML_JINJA = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)


def reference_scores(
    hf_dir: str,
    examples: list[loaders.Example],
    choice_format: str = "label",
) -> list[dict[str, Any]]:
    """Per example: {"prompt_ids": [...], "scores": {answer: summed log-prob}} from transformers (fp32)."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    out = []
    for example in examples:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": example.question}],
            chat_template=CHATML_JINJA,
            add_generation_prompt=True,
            tokenize=True,
        )["input_ids"]
        scores = {}
        for answer, text in scoring.loglik_candidates(example, choice_format):
            continuation = tokenizer(text, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + continuation])
            with torch.no_grad():
                logprobs = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
            targets = ids[0, len(prompt) :]
            scores[answer] = float(logprobs[len(prompt) - 1 :].gather(1, targets[:, None]).sum())
        out.append({"prompt_ids": prompt, "scores": scores})
    return out


def compare(predictions: list[dict], reference: list[dict[str, Any]]) -> dict[str, Any]:
    """Max |orca-jax - reference| over all option scores, and examples whose argmax agrees."""
    diffs, same = [], 0
    for row, ref in zip(predictions, reference, strict=True):
        ours = row["loglik"]["scores"]
        if set(ours) != set(ref["scores"]):
            raise ValueError(f"{row['task']}/{row['index']}: candidates {sorted(ours)} vs {sorted(ref['scores'])}")
        diffs += [abs(ours[k] - ref["scores"][k]) for k in ours]
        same += max(ours, key=ours.get) == max(ref["scores"], key=ref["scores"].get)
    return {
        "examples": len(predictions),
        "same_choice": same,
        "max_abs_diff": max(diffs) if diffs else 0.0,
        "options": len(diffs),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hf_dir", required=True)
    p.add_argument("--bbh_dir", required=True)
    p.add_argument("--predictions", required=True)
    p.add_argument("--choice_format", default="label")
    args = p.parse_args(argv)
    with open(args.predictions) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if r.get("loglik")]
    tasks = sorted({r["task"] for r in rows})
    loaded = loaders.load_bbh_format_dir(args.bbh_dir, tasks, benchmark="bbh")
    examples = [loaded[r["task"]][r["index"]] for r in rows]
    reference = reference_scores(args.hf_dir, examples, args.choice_format)
    mismatched = sum(len(ref["prompt_ids"]) != r["prompt_tokens"] for r, ref in zip(rows, reference))
    print(json.dumps({**compare(rows, reference), "prompt_length_mismatches": mismatched}))


if __name__ == "__main__":
    main()
