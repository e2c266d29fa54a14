"""Batched generation with a KV cache, a no-cache reference decoder, and option scoring.

Layout of a batch. Prompts are LEFT-padded to a common length `P` (a bucket, so that few
shapes are compiled). Pads carry segment id 0 and real tokens segment id 1; positions
count from 0 at each row's first real token. Real tokens never attend to segment 0, and
the attention span is always the whole cache. So a row's computation does not depend on how
much padding it has or which rows share its batch.

The KV cache is sized to the request, not to the model: `cache_length(P, N)` slots, P + N
rounded up to a multiple of `CACHE_MULTIPLE` (P is already a power-of-two bucket, so this adds
no compilations). Every decode step reads the whole cache, so its size sets the step time
(SmolLM2's max_position_embeddings of 8192 made each step several times slower than 128 slots).
Batches are also always padded to `batch_size` rows (dummy rows start finished), so the
shapes, and with them the compiled kernels, are the same for every batch.

Generation (`_generate_cached`, one jit): prefill all `P` prompt tokens in one call, pick
the first new token from the last column's logits, then a `lax.while_loop` feeds one
token per step until every row has produced EOS or `max_new_tokens` tokens. After EOS a
row emits `pad_id`. Greedy is argmax; with temperature > 0, tokens are sampled (optionally
top-p filtered) with a key per example (`fold_in(seed, example id)`, then the step), so
sampled outputs do not depend on batching either.

Prompts longer than `max_len - max_new_tokens` are truncated from the LEFT; the count is
returned per prompt. Parameters and batches can be sharded over a mesh as in training:
parameters by `partitioning.params_shardings`, batch rows over the batch mesh axes (with
`batch_size` a multiple of their size).

Shapes in docstrings: b = batch rows, P = padded prompt length, N = max new tokens,
V = vocab size, L = P + N.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from orca_jax import partitioning
from orca_jax.models import Llama, LlamaConfig
from orca_jax.training.train_state import abstract_boxed_params


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: temperature 0 is greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


@dataclasses.dataclass
class Generation:
    """Outputs of `Decoder.generate`, one entry per prompt, in the prompts' order."""

    tokens: list[list[int]]
    """Generated ids, EOS and what follows it removed."""
    finished: list[bool]
    """Whether the row produced EOS before `max_new_tokens`."""
    truncated: list[int]
    """Prompt tokens cut from the left to fit the cache."""


CACHE_MULTIPLE = 64
"""KV cache lengths are multiples of this many slots."""


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def cache_length(prompt_len: int, max_new_tokens: int, multiple: int = CACHE_MULTIPLE) -> int:
    """KV cache slots for a padded prompt of `prompt_len` plus `max_new_tokens`: their sum rounded
    up to `multiple`."""
    return round_up(prompt_len + max_new_tokens, multiple)


def prompt_bucket(length: int, minimum: int = 16) -> int:
    """The padded prompt length for a longest prompt of `length`: the next power of two."""
    return max(minimum, 1 << max(0, length - 1).bit_length())


def left_pad(prompts: Sequence[Sequence[int]], length: int, pad_id: int, rows: int | None = None):
    """tokens/positions/segment_ids `[rows, length]` int32 with each prompt right-aligned."""
    rows = rows or len(prompts)
    tokens = np.full((rows, length), pad_id, np.int32)
    positions = np.zeros((rows, length), np.int32)
    segments = np.zeros((rows, length), np.int32)
    for i, p in enumerate(prompts):
        n = len(p)
        if n:
            tokens[i, length - n :] = p
            positions[i, length - n :] = np.arange(n)
            segments[i, length - n :] = 1
    return tokens, positions, segments


def _select_token(
    logits: jax.Array, keys: jax.Array, step: jax.Array, greedy: bool, temperature: jax.Array, top_p: jax.Array
) -> jax.Array:
    """Next token per row from fp32 logits `[b, V]`: argmax, or a seeded (top-p) sample."""
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / temperature
    sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # probability mass ranked above each token
    keep = jnp.maximum(jnp.sum(before < top_p, axis=-1, keepdims=True), 1)  # the top token is always kept
    threshold = jnp.take_along_axis(sorted_logits, keep - 1, axis=-1)
    logits = jnp.where(logits < threshold, -jnp.inf, logits)
    step_keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(keys)
    return jax.vmap(jax.random.categorical)(step_keys, logits).astype(jnp.int32)


def _empty_cache(config: LlamaConfig, batch: int, length: int | None = None) -> Any:
    """A zero KV cache of `length` slots (default `config.max_len`) for `batch` rows (shapes from an
    abstract init; nothing is computed)."""
    model = Llama(config if length is None else config.replace(max_len=length), decode=True)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((batch, 1), jnp.int32)))
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), nn.unbox(shapes["cache"]))


def _generate_cached(
    params,
    tokens,
    positions,
    segment_ids,
    keys,
    active,
    eos_id,
    pad_id,
    temperature,
    top_p,
    *,
    config: LlamaConfig,
    max_new_tokens: int,
    greedy: bool,
) -> jax.Array:
    """Prefill + while_loop decode. Inputs `[b, P]` (keys `[b, 2]`, active `[b]`, scalars) -> `[b, N]`."""
    model = Llama(config, decode=True)
    b, p = tokens.shape
    cache = _empty_cache(config, b, cache_length(p, max_new_tokens))
    hidden, variables = model.apply(
        {"params": params, "cache": cache}, tokens, positions, segment_ids, return_hidden=True, mutable=["cache"]
    )
    # Left padding: the last column is every row's last prompt token; only its logits are needed.
    logits = model.apply({"params": params}, hidden[:, -1:], method=Llama.logits_from_hidden)[:, 0]
    first = _select_token(logits, keys, jnp.int32(0), greedy, temperature, top_p)
    first = jnp.where(active, first, pad_id)
    out = jnp.full((b, max_new_tokens), pad_id, jnp.int32).at[:, 0].set(first)
    done = ~active | (first == eos_id)
    state = (jnp.int32(1), first, positions[:, -1] + 1, done, out, variables["cache"])

    def cond(s):
        step, _, _, done, _, _ = s
        return (step < max_new_tokens) & ~jnp.all(done)

    def body(s):
        step, token, pos, done, out, cache = s
        logits, variables = model.apply(
            {"params": params, "cache": cache},
            token[:, None],
            pos[:, None],
            jnp.ones((b, 1), jnp.int32),
            mutable=["cache"],
        )
        nxt = _select_token(logits[:, 0], keys, step, greedy, temperature, top_p)
        nxt = jnp.where(done, pad_id, nxt)
        out = jax.lax.dynamic_update_slice(out, nxt[:, None], (0, step))
        return step + 1, nxt, pos + 1, done | (nxt == eos_id), out, variables["cache"]

    return jax.lax.while_loop(cond, body, state)[4]


def _generate_full(
    params,
    tokens,
    positions,
    segment_ids,
    keys,
    active,
    eos_id,
    pad_id,
    temperature,
    top_p,
    *,
    config: LlamaConfig,
    max_new_tokens: int,
    greedy: bool,
) -> jax.Array:
    """Reference decoder without a cache: each step reruns the whole `[b, L]` sequence."""
    model = Llama(config)
    b, p = tokens.shape
    n = max_new_tokens
    buf_tokens = jnp.concatenate([tokens, jnp.full((b, n), pad_id, jnp.int32)], axis=1)
    buf_pos = jnp.concatenate([positions, positions[:, -1:] + 1 + jnp.arange(n, dtype=jnp.int32)], axis=1)
    buf_seg = jnp.concatenate([segment_ids, jnp.zeros((b, n), jnp.int32)], axis=1)
    done = ~active

    def cond(s):
        step, _, _, done = s
        return (step < n) & ~jnp.all(done)

    def body(s):
        step, buf_tokens, buf_seg, done = s
        hidden = model.apply({"params": params}, buf_tokens, buf_pos, buf_seg, return_hidden=True)
        last = jax.lax.dynamic_slice_in_dim(hidden, p - 1 + step, 1, axis=1)
        logits = model.apply({"params": params}, last, method=Llama.logits_from_hidden)[:, 0]
        nxt = jnp.where(done, pad_id, _select_token(logits, keys, step, greedy, temperature, top_p))
        buf_tokens = jax.lax.dynamic_update_slice(buf_tokens, nxt[:, None], (0, p + step))
        buf_seg = jax.lax.dynamic_update_slice(buf_seg, jnp.ones((b, 1), jnp.int32), (0, p + step))
        return step + 1, buf_tokens, buf_seg, done | (nxt == eos_id)

    _, buf_tokens, buf_seg, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), buf_tokens, buf_seg, done))
    return jnp.where(buf_seg[:, p:] == 1, buf_tokens[:, p:], pad_id)


def _continuation_logprobs(
    params, tokens, positions, segment_ids, target_mask, *, config: LlamaConfig, span: int
) -> jax.Array:
    """Sum of log p(token) over `target_mask` `[b, P]`; only the last `span` columns are targets."""
    model = Llama(config)
    hidden = model.apply({"params": params}, tokens, positions, segment_ids, return_hidden=True)
    p = tokens.shape[1]
    logits = model.apply({"params": params}, hidden[:, p - span - 1 : p - 1], method=Llama.logits_from_hidden)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    targets = tokens[:, p - span :]
    picked = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(target_mask[:, p - span :], picked, 0.0), axis=-1)


class Decoder:
    """Generation and option scoring for one model and parameter set.

    Args:
      config: the model config; prompt + new tokens may not exceed `config.max_len` (the KV
        cache itself is sized to each request, see `cache_length`).
      params: the unboxed parameter tree (already sharded, or placed here when `mesh` is set).
      batch_size: rows per (global) decoding batch; a multiple of the batch mesh axes' size.
      eos_id / pad_id: token ids. They, the temperature and top_p are traced arguments of the
        jitted functions, so changing them does not recompile; greedy vs sampling does.
      mesh / rules: shard parameters and batches as in training (None: default device).
      use_cache: False selects the no-cache reference decoder (for tests and benchmarks).
      min_prompt_bucket: the smallest padded prompt length (buckets are powers of two).
      unroll_layers: decode with unrolled layers (`layers_{i}` params; a scanned parameter tree is
        re-laid out once here, a copy of the params). A decode step then reads each layer's
        weights in place instead of slicing them out of the stacked arrays: ~10% faster per step
        on CPU for SmolLM2, at the price of a longer compilation and the copy.
    """

    def __init__(
        self,
        config: LlamaConfig,
        params: Any,
        *,
        batch_size: int,
        eos_id: int,
        pad_id: int,
        mesh: jax.sharding.Mesh | None = None,
        rules: partitioning.Rules | None = None,
        use_cache: bool = True,
        min_prompt_bucket: int = 16,
        unroll_layers: bool = False,
    ):
        # No gradients here: nothing to rematerialise. The KV-cache decode always uses the xla
        # kernel; so do scoring and the no-cache decoder, whose short prompt buckets fused kernels
        # (splash: lengths divisible by 128) reject.
        if unroll_layers and config.scan_layers:
            from orca_jax.training.checkpoints import scan_layout

            params, config = scan_layout(params, False), config.replace(scan_layers=False)
        self.config = config.replace(remat_policy="none", attention_impl="xla")
        self.batch_size = batch_size
        self.eos_id, self.pad_id = eos_id, pad_id
        self.mesh, self.rules = mesh, (rules if rules is not None else partitioning.logical_axis_rules())
        self.use_cache, self.min_prompt_bucket = use_cache, min_prompt_bucket
        if mesh is not None:
            partitioning.check_batch_divisible(batch_size, mesh, self.rules)
            shardings = partitioning.params_shardings(abstract_boxed_params(config), mesh, self.rules)
            params = jax.device_put(params, shardings)
        self.params = params

    # -- helpers ------------------------------------------------------------------------

    def _put(self, *arrays: np.ndarray) -> tuple[jax.Array, ...]:
        """Device arrays; with a mesh, rows are split over the batch mesh axes."""
        if self.mesh is None:
            return tuple(jnp.asarray(a) for a in arrays)
        rows = partitioning.batch_spec(self.rules)[0]
        return tuple(
            jax.device_put(
                a, jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec(rows, *([None] * (a.ndim - 1))))
            )
            for a in arrays
        )

    def _jit(self, fn, **static):
        return _jitted(fn, self.config, tuple(sorted(static.items())))

    def _call(self, fn, *args):
        if self.mesh is None:
            return fn(*args)
        with partitioning.mesh_context(self.mesh, self.rules):
            return fn(*args)

    # -- generation -----------------------------------------------------------------------

    def max_prompt_len(self, max_new_tokens: int) -> int:
        limit = self.config.max_len - max_new_tokens
        if limit < 1:
            raise ValueError(
                f"max_new_tokens={max_new_tokens} leaves no room for a prompt within the "
                f"model's max_len={self.config.max_len}"
            )
        return limit

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        sampling: Sampling = Sampling(),
        example_ids: Sequence[int] | None = None,
    ) -> Generation:
        """Generate for every prompt (token ids, BOS included), `batch_size` rows at a time.

        `example_ids` (default: 0..n-1) seed each row's sampling key; greedy ignores them.
        """
        limit = self.max_prompt_len(max_new_tokens)
        truncated = [max(0, len(p) - limit) for p in prompts]
        prompts = [list(p)[-limit:] for p in prompts]
        ids = list(example_ids) if example_ids is not None else list(range(len(prompts)))
        fn = self._jit(
            _generate_cached if self.use_cache else _generate_full,
            max_new_tokens=max_new_tokens,
            greedy=sampling.temperature <= 0,
        )
        scalars = (
            np.int32(self.eos_id),
            np.int32(self.pad_id),
            np.float32(max(sampling.temperature, 1e-6)),
            np.float32(sampling.top_p),
        )
        base_key = jax.random.PRNGKey(sampling.seed)
        tokens_out: list[list[int]] = []
        finished: list[bool] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            length = min(prompt_bucket(max(len(p) for p in chunk), self.min_prompt_bucket), limit)
            tokens, positions, segments = left_pad(chunk, length, self.pad_id, self.batch_size)
            active = np.zeros(self.batch_size, bool)
            active[: len(chunk)] = True
            chunk_ids = ids[start : start + self.batch_size] + [0] * (self.batch_size - len(chunk))
            keys = np.asarray(jax.vmap(lambda i: jax.random.fold_in(base_key, i))(jnp.asarray(chunk_ids)))
            out = _to_host(self._call(fn, self.params, *self._put(tokens, positions, segments, keys, active), *scalars))
            for row in out[: len(chunk)]:
                row = row.tolist()
                done = self.eos_id in row
                tokens_out.append(row[: row.index(self.eos_id)] if done else row)
                finished.append(done)
        return Generation(tokens_out, finished, truncated)

    # -- log-likelihood -------------------------------------------------------------------

    def score(self, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]) -> list[float]:
        """log p(continuation | prompt), summed over the continuation's tokens, per pair."""
        limit = self.config.max_len
        rows, spans = [], []
        for p, c in zip(prompts, continuations):
            if not c:
                raise ValueError("cannot score an empty continuation")
            seq = (list(p) + list(c))[-limit:]
            rows.append(seq)
            spans.append(min(len(c), len(seq) - 1))
        scores: list[float] = []
        for start in range(0, len(rows), self.batch_size):
            chunk, chunk_spans = rows[start : start + self.batch_size], spans[start : start + self.batch_size]
            length = min(prompt_bucket(max(len(r) for r in chunk), self.min_prompt_bucket), limit)
            span = min(prompt_bucket(max(chunk_spans), 4), length - 1)
            tokens, positions, segments = left_pad(chunk, length, self.pad_id, self.batch_size)
            mask = np.zeros_like(tokens, dtype=bool)
            for i, s in enumerate(chunk_spans):
                mask[i, length - s :] = True
            fn = self._jit(_continuation_logprobs, span=span)
            out = _to_host(self._call(fn, self.params, *self._put(tokens, positions, segments, mask)))
            scores.extend(out[: len(chunk)].tolist())
        return scores


def _to_host(x: jax.Array) -> np.ndarray:
    """The whole array on this host (gathered from the other hosts' devices when needed)."""
    if not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


@functools.cache
def _jitted(fn, config: LlamaConfig, static: tuple) -> Any:
    """One jitted function per (function, model, static arguments), shared by all Decoders."""
    return jax.jit(functools.partial(fn, config=config, **dict(static)))
