"""Zero-shot evaluation of one checkpoint: load, prompt, decode, extract, score, write.

`evaluate(checkpoint, output_dir, ...)` is what the trainer calls after each stage and what
`python -m orca_jax.evaluate` runs. Apart from those two arguments, every setting is a field of
`EvalConfig` (gin: `EvalConfig.<name>`), built once and validated before any checkpoint loads.

Benchmarks:
* "bbh": the public BBH directory (27 tasks). Two aggregates are reported: the paper's
  23-task set (without the four free-form tasks) and all 27.
* "agieval": AGIEval v1. By default the paper's 8 English multiple-choice tasks, plus the
  math cloze task when its file is present. The aggregate is the average over the 8 MC tasks.
* any other name: a BBH-format directory from `bbh_format_dirs` (e.g. the demo's held-out
  tasks), reported per task and on average.

Outputs in `output_dir`: results.json (settings, prompts, per-task and aggregate accuracy),
predictions.jsonl (one line per example: prompt, raw output, extracted answer, target,
correct) and results.md (this checkpoint beside the paper's numbers). When the checkpoint is a
stage run dir (or one of its `checkpoints/<step>` dirs) the per-task and aggregate accuracies
also go to the run's TensorBoard dir (`<run>/tensorboard`, beside the training scalars) at
the checkpoint's step, as `eval/<benchmark>/<task>/accuracy` and
`eval/<benchmark>/average_<group>/accuracy`. Within a task, a log line after every decoding
batch gives examples done / total, the rate and the time left.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import gin
import jax

from orca_jax import partitioning
from orca_jax.data.tokenizer import load_tokenizer, prefix_ids
from orca_jax.evaluation import download, loaders, report, scoring, zero_shot_prompts
from orca_jax.evaluation.decoding import Decoder, Generation, Sampling, round_up
from orca_jax.models import LlamaConfig
from orca_jax.training import model_card

log = logging.getLogger(__name__)

METRICS = ("generate", "loglik", "both")
RANDOM_CHECKPOINT = "random"


def expand_path(path: str | None) -> str | None:
    """`~` and the placeholder `{demo_data_dir}` (the bundled demo data) expanded."""
    if path is None:
        return None
    if "{demo_data_dir}" in path:
        from orca_jax.demo.files import DEMO_DATA_DIR

        path = path.replace("{demo_data_dir}", DEMO_DATA_DIR)
    return os.path.expanduser(path)


def resolve_model_config(checkpoint: str, model_config: LlamaConfig | None) -> LlamaConfig:
    """The model to evaluate. In order: the `model_config` argument, the config recorded with
    the checkpoint, the gin-configured `orca_jax.models.model_config()`."""
    if model_config is not None:
        return model_config
    if not checkpoint.startswith(RANDOM_CHECKPOINT):
        from orca_jax.training.checkpoints import load_model_config

        recorded = load_model_config(checkpoint)
        if recorded is not None:
            return recorded
    from orca_jax.models import model_config as gin_model_config

    return gin_model_config()


def load_params(checkpoint: str, config: LlamaConfig, mesh, rules) -> Any:
    """Params of `checkpoint`; "random" or "random:<seed>" gives a random init (smoke tests)."""
    if checkpoint.startswith(RANDOM_CHECKPOINT):
        import flax.linen as nn
        import jax.numpy as jnp

        from orca_jax.models import Llama

        seed = int(checkpoint.split(":", 1)[1]) if ":" in checkpoint else 0
        model = Llama(config.replace(attention_impl="xla"))  # params do not depend on the kernel
        return nn.unbox(model.init(jax.random.PRNGKey(seed), jnp.zeros((1, 1), jnp.int32)))["params"]
    from orca_jax.training.checkpoints import load_params as load_checkpoint_params

    return load_checkpoint_params(checkpoint, config=config, mesh=mesh, rules=rules)


def load_benchmarks(
    benchmarks: Sequence[str] | None,
    data_dir: str,
    bbh_dir: str | None,
    agieval_dir: str | None,
    bbh_format_dirs: Mapping[str, str] | None,
    tasks: Sequence[str] | None,
) -> dict[str, tuple[str, dict[str, list[loaders.Example]]]]:
    """{benchmark: (directory, {task: examples})} for the selected benchmarks and tasks.

    `benchmarks=None` means every custom directory plus "bbh"/"agieval" when their
    directory exists. A task name may be bare ("snarks") or qualified ("bbh/snarks").
    """
    data_dir = expand_path(data_dir)
    dirs = {
        "bbh": expand_path(bbh_dir) or download.bbh_dir(data_dir),
        "agieval": expand_path(agieval_dir) or download.agieval_dir(data_dir),
        **{name: expand_path(d) for name, d in (bbh_format_dirs or {}).items()},
    }
    if benchmarks is None:
        benchmarks = [b for b in dirs if b not in ("bbh", "agieval") or os.path.isdir(dirs[b])]
        for name in ("bbh", "agieval"):
            if name not in benchmarks:
                log.warning(
                    "skipping %s: %s does not exist (run `python -m orca_jax.evaluate download`)", name, dirs[name]
                )
    wanted = None if tasks is None else list(tasks)
    out = {}
    for name in benchmarks:
        if name not in dirs:
            raise ValueError(
                f"unknown benchmark {name!r}; known: {sorted(dirs)} (add custom ones "
                "with bbh_format_dirs={name: directory})"
            )
        directory = dirs[name]
        suffix = ".jsonl" if name == "agieval" else ".json"
        available = (
            sorted(f[: -len(suffix)] for f in os.listdir(directory) if f.endswith(suffix))
            if os.path.isdir(directory)
            else []
        )
        if wanted is not None:
            selected = [t for t in available if t in wanted or f"{name}/{t}" in wanted]
        elif name == "agieval":
            selected = [t for t in loaders.AGIEVAL_DEFAULT_TASKS if t in available]
        else:
            selected = available
        if not selected and wanted is not None:
            continue
        if name == "agieval":
            out[name] = (directory, loaders.load_agieval_dir(directory, selected))
        else:
            out[name] = (directory, loaders.load_bbh_format_dir(directory, selected, benchmark=name))
    if wanted is not None:
        found = {t for name, (_, ex) in out.items() for t in ex} | {
            f"{name}/{t}" for name, (_, ex) in out.items() for t in ex
        }
        if unmatched := [t for t in wanted if t not in found]:
            raise ValueError(f"tasks {unmatched} were not found in the benchmarks {list(benchmarks)}")
    return out


def _aggregates(name: str, tasks: Mapping[str, Mapping], with_loglik: bool) -> dict:
    if name == "bbh":
        groups = {"paper_23": loaders.BBH_PAPER_TASKS, "all_27": loaders.BBH_TASKS}
    elif name == "agieval":
        groups = {"english_mc": loaders.AGIEVAL_ENGLISH_MC_TASKS}
    else:
        groups = {"all": tuple(tasks)}
    out = {}
    for group, names in groups.items():
        agg = scoring.aggregate(tasks, names)
        if with_loglik:
            ll = scoring.aggregate(tasks, names, key="loglik_accuracy")
            agg = dict(agg or {}, loglik_accuracy=ll["accuracy"] if ll else None)
        out[group] = agg
    return out


def _example_seed(example: loaders.Example) -> int:
    return zlib.crc32(example.uid.encode()) & 0x7FFFFFFF


def _progress_line(label: str, done: int, total: int, seconds: float) -> str:
    """ "bbh/snarks: 64/178 examples (36%), 2.1 examples/s, ~54 s left"."""
    rate = done / seconds if seconds > 0 else float("inf")
    left = (total - done) / rate if rate > 0 else float("inf")
    return f"{label}: {done}/{total} examples ({done / total:.0%}), {rate:.2f} examples/s, ~{left:.0f} s left"


def _generate_with_progress(
    decoder: Decoder,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    sampling: Sampling,
    example_ids: Sequence[int],
    label: str,
) -> Generation:
    """`decoder.generate` one decoding batch at a time (the same batches, so the same outputs),
    logging examples done / total, the rate and the time left after each batch."""
    step = decoder.batch_size
    out = Generation([], [], [])
    start = time.time()
    for first in range(0, len(prompts), step):
        part = decoder.generate(
            prompts[first : first + step], max_new_tokens, sampling, example_ids=example_ids[first : first + step]
        )
        out.tokens.extend(part.tokens)
        out.finished.extend(part.finished)
        out.truncated.extend(part.truncated)
        log.info("%s", _progress_line(label, len(out.tokens), len(prompts), time.time() - start))
    return out


def _write_tensorboard(checkpoint: str, results: Mapping[str, Any]) -> None:
    """Accuracies as TensorBoard scalars in the run's tensorboard dir, at the checkpoint's step,
    when `checkpoint` is a stage run dir or one of its step dirs (as T5X's inference evals)."""
    target = report.run_checkpoint_step(checkpoint)
    if target is None:
        return
    run_dir, step = target
    written = report.write_tensorboard(results, run_dir, step)
    log.info("wrote %d evaluation scalars to %s/%s at step %d", len(written), run_dir, report.TENSORBOARD_DIR, step)


def _run_task(
    examples: list[loaders.Example],
    decoder: Decoder,
    tokenizer,
    *,
    template: str,
    system_message_id: int,
    metric: str,
    max_new_tokens: int,
    sampling: Sampling,
    choice_format: str,
    omit_empty_system: bool | None = None,
) -> tuple[dict, list[dict], int]:
    """Evaluate one task; returns (summary, prediction rows, truncated prompt count)."""
    texts = [zero_shot_prompts.render(e, template, system_message_id, omit_empty_system) for e in examples]
    ids = [prefix_ids(tokenizer) + tokenizer.encode(t) for t in texts]  # BOS only if the tokenizer has one
    stops = zero_shot_prompts.stop_strings(template)
    rows = [
        {
            "benchmark": e.benchmark,
            "task": e.task,
            "index": e.index,
            "answer_type": e.answer_type,
            "prompt": t,
            "prompt_tokens": len(i),
            "target": e.target,
        }
        for e, t, i in zip(examples, texts, ids)
    ]
    scored: list[scoring.Scored] = []
    truncated = 0
    if metric in ("generate", "both"):
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # less padding; outputs do not depend on it
        gen = _generate_with_progress(
            decoder,
            [ids[i] for i in order],
            max_new_tokens,
            sampling,
            [_example_seed(examples[i]) for i in order],
            f"{examples[0].benchmark}/{examples[0].task}",
        )
        outputs: list[Any] = [None] * len(ids)
        for k, i in enumerate(order):
            outputs[i] = (gen.tokens[k], gen.finished[k], gen.truncated[k])
        for e, row, (tokens, finished, cut) in zip(examples, rows, outputs):
            raw = tokenizer.decode(tokens)
            s = scoring.score(e, raw, stops)
            scored.append(s)
            truncated += cut > 0
            row.update(
                raw_output=raw,
                extracted=s.extracted,
                correct=s.correct,
                finished=finished,
                generated_tokens=len(tokens),
                truncated_tokens=cut,
            )
    summary = (
        scoring.task_summary(scored)
        if scored
        else {"num_examples": len(examples), "num_correct": None, "num_unparsed": None, "accuracy": None}
    )
    if metric in ("loglik", "both"):
        summary.update(_loglik(examples, ids, rows, decoder, tokenizer, choice_format))
    return summary, rows, truncated


def _loglik(
    examples: list[loaders.Example],
    ids: list[list[int]],
    rows: list[dict],
    decoder: Decoder,
    tokenizer,
    choice_format: str,
) -> dict:
    """Score each example's closed answer set; fills rows[k]["loglik"] and returns the task's counts."""
    pairs = [
        (k, answer, text)
        for k, e in enumerate(examples)
        for answer, text in scoring.loglik_candidates(e, choice_format)
    ]
    if not pairs:  # free-form answers have no closed candidate set
        for row in rows:
            row["loglik"] = None
        return {"loglik_num_correct": None, "loglik_accuracy": None}
    values = decoder.score([ids[k] for k, _, _ in pairs], [tokenizer.encode(t) for _, _, t in pairs])
    per_example: dict[int, dict[str, float]] = {}
    for (k, answer, _), v in zip(pairs, values):
        per_example.setdefault(k, {})[answer] = v
    correct = 0
    for k, (e, row) in enumerate(zip(examples, rows)):
        candidates = per_example.get(k, {})
        predicted = max(candidates, key=candidates.get) if candidates else None
        ok = predicted is not None and predicted == scoring.loglik_gold(e)
        correct += ok
        row["loglik"] = {"scores": candidates, "predicted": predicted, "correct": ok}
    return {"loglik_num_correct": correct, "loglik_accuracy": correct / len(examples)}


def resolve_tokenizer(tokenizer_path: str | None, card: Mapping[str, Any] | None) -> Any:
    """The tokenizer: `tokenizer_path` (flag/gin) if given, else the model card's; a note when they differ."""
    recorded = (card or {}).get("tokenizer") or {}
    if tokenizer_path is None:
        if not recorded:
            raise ValueError(
                "evaluate needs a tokenizer: the checkpoint has no model card naming one; set "
                "tokenizer_path (--tokenizer_path, gin: EvalConfig.tokenizer_path) or pass tokenizer="
            )
        path = model_card.card_tokenizer_path(card)
        tokenizer = load_tokenizer(path)
        if recorded.get("sha256") not in (None, tokenizer.sha256):
            log.warning(
                "tokenizer %s differs from the one the checkpoint was trained with (model card sha256 %s, now %s)",
                path,
                recorded["sha256"],
                tokenizer.sha256,
            )
        log.info("tokenizer %s (from the model card in %s)", path, card["directory"])
        return tokenizer
    tokenizer = load_tokenizer(expand_path(tokenizer_path))
    if recorded and recorded.get("sha256") != tokenizer.sha256:
        log.warning(
            "note: tokenizer_path=%s overrides the checkpoint's tokenizer %s (model card in %s)",
            tokenizer_path,
            recorded.get("path"),
            card["directory"],
        )
    return tokenizer


def resolve_chat_template(template: str | None, card: Mapping[str, Any] | None) -> tuple[str, bool | None]:
    """(template name, omit_empty_system): the flag/gin `template` if given, else the model card's,
    else render_prompt's gin binding (omit_empty_system None: also gin's)."""
    recorded = (card or {}).get("chat_template") or {}
    omit = recorded.get("omit_empty_system")
    if template is not None:
        zero_shot_prompts.resolve_template(template)  # validates the name
        if recorded and recorded["name"] != template:
            log.warning(
                "note: template=%s overrides the checkpoint's chat template %s (model card in %s)",
                template,
                recorded["name"],
                card["directory"],
            )
        return template, omit
    if recorded:
        gin_default = zero_shot_prompts.resolve_template(None)
        if gin_default != recorded["name"]:
            log.info(
                "chat template %s from the model card (render_prompt's gin binding says %s)",
                recorded["name"],
                gin_default,
            )
        return recorded["name"], omit
    return zero_shot_prompts.resolve_template(None), omit


@gin.configurable
@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How checkpoints are evaluated (gin: `EvalConfig.<field>`; the evaluate CLI's flags override)."""

    dtype: str | None = None
    """Activation dtype override ("float32" for parity checks against a reference); None: the model's."""
    tokenizer_path: str | None = None
    """SentencePiece model, tokenizer.json or Hugging Face directory (data.tokenizer.load_tokenizer);
    None: the one in the checkpoint's model card. `~` and `{demo_data_dir}` are expanded."""
    template: str | None = None
    """Chat template name; None: the checkpoint's model card (how it was trained), else render_prompt's
    gin binding. An explicit value that differs from the card is logged."""
    system_message_id: int = 1
    """Orca system message 1..16 (1 = empty, the paper's zero-shot setting)."""
    data_dir: str = download.DEFAULT_CACHE_DIR
    """Cache written by `python -m orca_jax.evaluate download`; holds bbh/ and agieval/v1/."""
    bbh_dir: str | None = None
    """Overrides `<data_dir>/bbh`."""
    agieval_dir: str | None = None
    """Overrides `<data_dir>/agieval/v1`."""
    bbh_format_dirs: Mapping[str, str] | None = None
    """Extra benchmarks {name: directory of BBH-format task files}."""
    benchmarks: Sequence[str] | None = None
    """Names to run; None: all custom ones, plus bbh/agieval where present."""
    tasks: Sequence[str] | None = None
    """Only these tasks ("snarks" or "bbh/snarks"); None: every task of each benchmark."""
    max_examples_per_task: int | None = None
    """The first N examples of each task (smoke runs); None: all."""
    batch_size: int = 8
    """Rows per decoding batch (rounded up to a multiple of the batch mesh axes)."""
    max_new_tokens: int = 256
    """Generation budget per example, in tokens."""
    max_new_tokens_per_task: Mapping[str, int] | None = None
    """Per-task budgets that replace max_new_tokens."""
    metric: str = "generate"
    """"generate" (generate, extract, match: the paper's protocol), "loglik" (argmax of summed
    continuation log-probs over the closed answer set), or "both"."""
    choice_format: str = "label"
    """Log-likelihood continuations for multiple choice: "label" ("(B)") or "text"."""
    temperature: float = 0.0
    """Sampling temperature; 0 is greedy."""
    top_p: float = 1.0
    """Nucleus sampling mass, in (0, 1]."""
    seed: int = 0
    """Sampling seed."""
    mesh_shape: Sequence[int] | str | None = "training"
    """"training" (the default training mesh), a shape such as (1, -1, 1), or None (one device);
    a `mesh` passed to evaluate() wins."""

    def __post_init__(self):
        checks = (
            (self.metric in METRICS, f"metric={self.metric!r}; expected one of {METRICS}"),
            (self.choice_format in ("label", "text"), f"choice_format={self.choice_format!r}; expected label or text"),
            (1 <= self.system_message_id <= 16, f"system_message_id={self.system_message_id}; expected 1..16"),
            (self.batch_size >= 1, f"batch_size={self.batch_size}; expected >= 1"),
            (self.max_new_tokens >= 1, f"max_new_tokens={self.max_new_tokens}; expected >= 1"),
            (0.0 < self.top_p <= 1.0, f"top_p={self.top_p}; expected in (0, 1]"),
        )
        if bad := [message for ok, message in checks if not ok]:
            raise ValueError("EvalConfig: " + "; ".join(bad))


def evaluate(
    checkpoint: str,
    output_dir: str,
    config: EvalConfig | None = None,
    *,
    model_config: LlamaConfig | None = None,
    mesh: jax.sharding.Mesh | None = None,
    params: Any = None,
    tokenizer: Any = None,
    **overrides: Any,
) -> dict:
    """Evaluate `checkpoint` zero-shot and write results into `output_dir`; returns results.json's dict.

    Args:
      checkpoint: a stage run dir, a step dir, a converted-weights dir, or "random[:seed]".
      output_dir: where results.json, predictions.jsonl and results.md are written.
      config: how (EvalConfig); default: EvalConfig() as gin binds it.
      model_config: the model; default: recorded with the checkpoint, else gin's model_config().
      mesh: shard params and batches over this mesh (e.g. the trainer's); wins over config.mesh_shape.
      params / tokenizer: already-loaded objects (the trainer passes its own); skip loading.
      overrides: EvalConfig fields replaced for this call (e.g. max_examples_per_task=2).
    """
    cfg = dataclasses.replace(config or EvalConfig(), **overrides)
    start = time.time()
    os.makedirs(output_dir, exist_ok=True)
    config = resolve_model_config(checkpoint, model_config)
    if cfg.dtype is not None:
        config = config.replace(dtype=cfg.dtype)
    rules = partitioning.logical_axis_rules()
    if mesh is None and cfg.mesh_shape is not None:
        mesh = partitioning.make_mesh() if cfg.mesh_shape == "training" else partitioning.make_mesh(cfg.mesh_shape)
    batch_size = cfg.batch_size
    if mesh is not None:
        batch_size = round_up(batch_size, partitioning.mesh_axes_size(mesh, dict(rules).get("batch")))
    card = None if checkpoint.startswith(RANDOM_CHECKPOINT) else model_card.load_card(checkpoint)
    if tokenizer is None:
        tokenizer = resolve_tokenizer(cfg.tokenizer_path, card)
    template, omit_empty_system = resolve_chat_template(cfg.template, card)
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} ids but the model only {config.vocab_size}")
    if params is None:
        params = load_params(checkpoint, config, mesh, rules)
    decoder = Decoder(
        config,
        params,
        batch_size=batch_size,
        eos_id=tokenizer.eos_id,
        pad_id=tokenizer.pad_id if tokenizer.pad_id < config.vocab_size else 0,
        mesh=mesh,
        rules=rules,
    )
    sampling = Sampling(cfg.temperature, cfg.top_p, cfg.seed)
    loaded = load_benchmarks(cfg.benchmarks, cfg.data_dir, cfg.bbh_dir, cfg.agieval_dir, cfg.bbh_format_dirs, cfg.tasks)

    results: dict[str, Any] = {
        "checkpoint": checkpoint,
        "settings": {
            "template": template,
            "omit_empty_system": omit_empty_system,
            "tokenizer": {
                "path": getattr(tokenizer, "path", None),
                "sha256": getattr(tokenizer, "sha256", None),
                "bos_id": tokenizer.bos_id,
                "eos_id": tokenizer.eos_id,
                "pad_id": tokenizer.pad_id,
            },
            "model_card": card["directory"] if card else None,
            "system_message_id": cfg.system_message_id,
            "metric": cfg.metric,
            "choice_format": cfg.choice_format,
            "decoding": "greedy"
            if cfg.temperature <= 0
            else f"sampling(temperature={cfg.temperature}, top_p={cfg.top_p}, seed={cfg.seed})",
            "max_new_tokens": cfg.max_new_tokens,
            "max_new_tokens_per_task": dict(cfg.max_new_tokens_per_task or {}),
            "max_examples_per_task": cfg.max_examples_per_task,
            "batch_size": batch_size,
            "kv_cache": "sized to each batch's prompt + new tokens",
            "model": {
                "vocab_size": config.vocab_size,
                "d_model": config.d_model,
                "n_layers": config.n_layers,
                "dtype": config.dtype,
            },
            "mesh": dict(mesh.shape) if mesh is not None else None,
        },
        "benchmarks": {},
    }
    predictions: list[dict] = []
    num_truncated = 0
    for name, (directory, task_examples) in loaded.items():
        task_examples = loaders.take(task_examples, cfg.max_examples_per_task)
        summaries = {}
        for task, examples in task_examples.items():
            if not examples:
                continue
            t0 = time.time()
            budget = (cfg.max_new_tokens_per_task or {}).get(task, cfg.max_new_tokens)
            summary, rows, cut = _run_task(
                examples,
                decoder,
                tokenizer,
                template=template,
                system_message_id=cfg.system_message_id,
                metric=cfg.metric,
                max_new_tokens=budget,
                sampling=sampling,
                choice_format=cfg.choice_format,
                omit_empty_system=omit_empty_system,
            )
            summary.update(
                answer_type=examples[0].answer_type,
                max_new_tokens=budget,
                prompt=zero_shot_prompts.prompt_description(
                    examples[0], template, cfg.system_message_id, omit_empty_system
                ),
            )
            summaries[task] = summary
            predictions.extend(rows)
            num_truncated += cut
            log.info(
                "%s/%s: %d examples, accuracy %s, loglik %s (%.1fs)",
                name,
                task,
                len(examples),
                summary.get("accuracy"),
                summary.get("loglik_accuracy"),
                time.time() - t0,
            )
        results["benchmarks"][name] = {
            "directory": directory,
            "tasks": summaries,
            "aggregates": _aggregates(name, summaries, cfg.metric != "generate"),
        }
    results["num_truncated_prompts"] = num_truncated
    results["num_examples"] = len(predictions)
    results["seconds"] = round(time.time() - start, 1)
    results["files"] = {
        k: os.path.join(output_dir, f)
        for k, f in (
            ("results_json", report.RESULTS_JSON),
            ("predictions_jsonl", report.PREDICTIONS_JSONL),
            ("results_md", report.RESULTS_MD),
        )
    }
    if jax.process_index() == 0:
        report.write_predictions(output_dir, predictions)
        report.write_markdown(output_dir, results)
        report.write_json(output_dir, results)
        _write_tensorboard(checkpoint, results)
    return results
