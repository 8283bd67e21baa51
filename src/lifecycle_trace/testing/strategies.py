"""hypothesis strategies for the engine's inputs, made so the scheduler's hard cases are common.

:func:`engine_configs` (tiny KV caches so preemption is common, tiny token
budgets, long-prefill threshold, prefix caching, chunked prefill,
full-sequence admission on and off), :func:`prompts` and
:func:`text_prompts` (edge sizes: 1 token, a block, a block plus or minus
one, ``max_model_len - 1``; shared prefixes), :func:`sampling_params`,
:func:`token_scripts`, and :func:`scenarios` (a whole
:class:`~lifecycle_trace.testing.scenario.Scenario`).
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from lifecycle_trace.testing.scenario import EOS_TOKEN_ID, Scenario, ScriptedSampler
from minivllm.config import EngineConfig
from minivllm.sampling_params import SamplingParams
from minivllm.workload import WorkloadRequest

__all__ = [
    "STOP_TOKEN_CHOICES",
    "engine_configs",
    "prompts",
    "sampling_params",
    "scenarios",
    "text_prompts",
    "token_scripts",
]

STOP_TOKEN_CHOICES = (1, 2, 3)
"""The token ids :func:`sampling_params` picks ``stop_token_ids`` from."""


def _cdiv(a: int, b: int) -> int:
    return -(a // -b)


# Generation dominates the cost of a small engine run, so the strategies are
# built once at import time and dynamic ranges are reached by arithmetic on a
# fixed draw: a fresh strategy object per draw costs hypothesis a validation.

_BOOL = st.booleans()
_BLOCK_SIZES = st.sampled_from([1, 2, 4, 8, 16])
_MAX_MODEL_LEN = st.integers(2, 64)
_MAX_NUM_SEQS = st.integers(1, 5)
_SMALL = st.integers(0, 16)
_FRACTION = st.integers(0, 1024)
_KV_SHAPE = st.sampled_from(["one request", "tight", "roomy"])
_BUDGET_SHAPE = st.sampled_from(["tiny", "any"])
_TOKEN_BYTES = st.binary(max_size=64)
_MAX_TOKENS = st.one_of(st.none(), st.integers(1, 16))
_STOP_IDS = st.lists(st.sampled_from(STOP_TOKEN_CHOICES), max_size=2, unique=True)
_TEMPERATURE = st.sampled_from([0.0, 0.7, 1.0])
_TOP_P = st.sampled_from([1.0, 0.9])
_TOP_K = st.sampled_from([0, -1, 5])
_SEED = st.one_of(st.none(), st.integers(0, 2**16))
_POSITIONS = st.lists(st.integers(0, 17), max_size=2, unique=True)


def _pick(draw: st.DrawFn, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]`` from a fixed strategy (shrinks towards ``lo``)."""
    return lo + draw(_FRACTION) * (hi - lo) // 1024


def _tokens(draw: st.DrawFn, n: int) -> list[int]:
    """``n`` prompt tokens from a four-letter alphabet, so different prompts often share blocks."""
    raw = draw(_TOKEN_BYTES)
    return [10 + raw[i % len(raw)] % 4 if raw else 10 for i in range(n)]


@st.composite
def engine_configs(
    draw: st.DrawFn,
    *,
    max_model_len: st.SearchStrategy[int] | None = None,
    block_size: st.SearchStrategy[int] | None = None,
    max_num_seqs: st.SearchStrategy[int] | None = None,
    enable_chunked_prefill: st.SearchStrategy[bool] | None = None,
    enable_prefix_caching: st.SearchStrategy[bool] | None = None,
) -> EngineConfig:
    """Small, valid engine configurations that make the scheduler's hard cases common.

    The KV cache is often just big enough for one ``max_model_len`` request
    (so preemption is frequent), the token budget often barely above
    ``max_num_seqs`` (so prefills are chunked), and the long-prefill threshold,
    prefix caching, chunked prefill and full-sequence admission are each on
    or off. Pass a strategy for a field to pin or narrow it.
    """
    bs = draw(block_size if block_size is not None else _BLOCK_SIZES)
    mml = draw(max_model_len if max_model_len is not None else _MAX_MODEL_LEN)
    seqs = draw(max_num_seqs if max_num_seqs is not None else _MAX_NUM_SEQS)
    chunked = draw(enable_chunked_prefill if enable_chunked_prefill is not None else _BOOL)
    caching = draw(enable_prefix_caching if enable_prefix_caching is not None else _BOOL)
    min_blocks = _cdiv(mml, bs) + 1  # one full-length request, plus the null block
    kv = draw(_KV_SHAPE)
    if kv == "one request":
        blocks = min_blocks
    elif kv == "tight":
        blocks = _pick(draw, min_blocks, min_blocks + 3)
    else:
        blocks = _pick(draw, min_blocks, 4 * min_blocks + 4)
    if chunked and draw(_BUDGET_SHAPE) == "tiny":
        budget = _pick(draw, seqs, seqs + 8)
    else:
        budget = _pick(draw, max(mml, seqs) if not chunked else seqs, 2 * mml + 8)
    threshold = _pick(draw, 1, mml) if draw(_BOOL) else 0
    return EngineConfig(
        max_num_seqs=seqs,
        max_num_batched_tokens=budget,
        block_size=bs,
        num_gpu_blocks=blocks,
        max_model_len=mml,
        enable_chunked_prefill=chunked,
        long_prefill_token_threshold=threshold,
        enable_prefix_caching=caching,
        scheduler_reserve_full_isl=draw(_BOOL),
    )


@st.composite
def prompts(
    draw: st.DrawFn, config: EngineConfig, prefixes: Sequence[Sequence[int]] = ()
) -> list[int]:
    """A prompt of token ids that fits ``config``, often of an edge size, often sharing a prefix.

    Lengths favour 1, a block, a block plus or minus one, two blocks and
    ``max_model_len - 1``. Tokens come from a small alphabet, and with
    ``prefixes`` a prompt often starts with one of them, so prefix-cache hits
    (and partial hits) are common.
    """
    top = config.max_model_len - 1
    bs = config.block_size
    edges = sorted({n for n in (1, bs - 1, bs, bs + 1, 2 * bs, top) if 1 <= n <= top})
    n = edges[draw(_SMALL) % len(edges)] if draw(_BOOL) else _pick(draw, 1, top)
    head: list[int] = []
    use_prefix: bool = draw(_BOOL)
    if prefixes and use_prefix:
        head = list(prefixes[draw(_SMALL) % len(prefixes)])[:n]
    return head + _tokens(draw, n - len(head))


def text_prompts(max_bytes: int) -> st.SearchStrategy[str]:
    """Non-empty text of at most ``max_bytes`` UTF-8 bytes (the byte tokenizer's tokens)."""
    return st.text(min_size=1, max_size=max_bytes).filter(
        lambda s: 0 < len(s.encode("utf-8")) <= max_bytes
    )


@st.composite
def sampling_params(draw: st.DrawFn) -> SamplingParams:
    """Valid sampling parameters: lengths, min_tokens, stop tokens, ignore_eos and sampler knobs.

    ``max_tokens`` is 1..16 or None (until ``max_model_len``); ``min_tokens``
    may exceed what ``max_model_len`` leaves room for, which the engine must
    still finish.
    """
    max_tokens = draw(_MAX_TOKENS)
    min_tokens = draw(_SMALL) % ((max_tokens if max_tokens is not None else 16) + 1)
    return SamplingParams(
        max_tokens=max_tokens,
        min_tokens=min_tokens if draw(_BOOL) else 0,
        stop_token_ids=draw(_STOP_IDS),
        ignore_eos=draw(_BOOL),
        temperature=draw(_TEMPERATURE),
        top_p=draw(_TOP_P),
        top_k=draw(_TOP_K),
        seed=draw(_SEED),
    )


@st.composite
def token_scripts(draw: st.DrawFn, params: SamplingParams) -> dict[int, int]:
    """Output positions (0..17) at which the model emits EOS or one of the request's stop tokens."""
    choices = [EOS_TOKEN_ID, *params.stop_token_ids]
    return {p: choices[draw(_SMALL) % len(choices)] for p in draw(_POSITIONS)}


@st.composite
def scenarios(
    draw: st.DrawFn,
    configs: st.SearchStrategy[EngineConfig] | None = None,
    *,
    max_requests: int = 5,
    max_arrival: int = 6,
) -> Scenario:
    """A whole test case: a config, 1..``max_requests`` requests, arrivals, aborts, a token script.

    Requests arrive at steps 0..``max_arrival`` (most at 0); some are aborted
    at a step (possibly before they arrive, while waiting, running or
    preempted, or after they finished, which the engine ignores). Two shared
    prefixes feed :func:`prompts`.
    """
    config = draw(configs if configs is not None else engine_configs())
    bs = config.block_size
    top = max(bs, min(3 * bs, config.max_model_len - 1))
    prefixes = [_tokens(draw, _pick(draw, bs, top)) for _ in range(2)]
    n = 1 + draw(_SMALL) % max_requests
    requests = []
    script: dict[str, dict[int, int]] = {}
    for i in range(n):
        rid = f"r{i}"
        params = draw(sampling_params())
        requests.append(
            WorkloadRequest(
                id=rid,
                prompt_token_ids=draw(prompts(config, prefixes)),
                sampling_params=params,
                arrival=_pick(draw, 0, max_arrival) if draw(_BOOL) else 0,
                abort=_pick(draw, 0, max_arrival + 8) if draw(_BOOL) else None,
            )
        )
        tokens = draw(token_scripts(params))
        if tokens:
            script[rid] = tokens
    return Scenario(config, tuple(requests), ScriptedSampler(script))
