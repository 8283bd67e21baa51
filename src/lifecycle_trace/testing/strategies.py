"""hypothesis strategies for the engine's inputs, made so the scheduler's hard cases are common.

:func:`engine_configs` (tiny KV caches so preemption is common, tiny token
budgets, long-prefill threshold, prefix caching, chunked prefill,
full-sequence admission on and off), :func:`prompts` and
:func:`text_prompts` (edge sizes: 1 token, a block, a block plus or minus
one, ``max_model_len - 1``; shared prefixes), :func:`sampling_params`
(stop strings with multi-byte characters, ``min_tokens`` at its edges, output
kinds), :func:`token_scripts`, and :func:`scenarios` (a whole
:class:`~lifecycle_trace.testing.scenario.Scenario`, each leaning towards one
of :data:`FOCUSES`).
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from lifecycle_trace.testing.scenario import EOS_TOKEN_ID
from lifecycle_trace.testing.scenario import Scenario
from lifecycle_trace.testing.scenario import ScriptedSampler
from minivllm.config import EngineConfig
from minivllm.sampling_params import RequestOutputKind
from minivllm.sampling_params import SamplingParams
from minivllm.workload import WorkloadRequest

__all__ = [
    "FOCUSES",
    "PRIORITIES",
    "STOP_STRING_CHOICES",
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

FOCUSES = ("any", "prefix cache", "admission", "preemption", "stop rules")
"""The situations :func:`scenarios` concentrates one example on (swarm testing).

``prefix cache``: caching on, a tight KV cache, prompts sharing prefixes of
whole blocks. ``admission``: few sequences, a tiny budget (chunked prefill on
or off), a long-prefill threshold, several requests at once. ``stop rules``:
room for many outputs, short prompts, stop strings and tokens written by the
model around ``min_tokens``. ``preemption``: several long-running requests on a
cache that holds about one, small blocks. ``any``: everything at once, uniformly.
"""

PRIORITIES = st.sampled_from((0, 0, 1, 2))
"""Request priorities (lower runs first under the priority policy; ties are common)."""

STOP_STRING_CHOICES = ("a", "ab", "ba", "é", "xé", "€", "😀", "\x07a")
"""The stop strings :func:`sampling_params` picks from: ASCII, and characters of 2 to 4 bytes."""


def _cdiv(a: int, b: int) -> int:
    return -(a // -b)


# Generation dominates the cost of a small engine run, so the strategies are
# built once at import time and dynamic ranges are reached by arithmetic on a
# fixed draw: a fresh strategy object per draw costs hypothesis a validation.

_BOOL = st.booleans()
_BLOCK_SIZES = st.sampled_from([1, 2, 4, 8, 16])
# sampled_from draws uniformly (integers() favours its bounds), so sizes spread
# over their whole range; it still shrinks towards the first, smallest choice.
_MAX_MODEL_LEN = st.sampled_from((2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64))
_MAX_NUM_SEQS = st.sampled_from((1, 2, 3, 4, 5))
_SMALL = st.sampled_from(tuple(range(17)))
_FRACTION = st.sampled_from(tuple(range(0, 1025, 32)))
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
_STOP_STRINGS = st.lists(st.sampled_from(STOP_STRING_CHOICES), max_size=2, unique=True)
_KIND = RequestOutputKind
_OUTPUT_KIND = st.sampled_from([_KIND.CUMULATIVE, _KIND.CUMULATIVE, _KIND.DELTA, _KIND.FINAL_ONLY])
_MIN_TOKENS_SHAPE = st.sampled_from(["none", "any", "max_tokens", "max_tokens - 1"])
_FOCUS = st.sampled_from(FOCUSES)
_POLICY = st.sampled_from(("fcfs", "priority"))
_ONE_IN_FOUR = st.sampled_from((0, 1, 2, 3))


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
    async_scheduling: st.SearchStrategy[bool] | None = None,
    policy: st.SearchStrategy[str] | None = None,
    focus: str | None = None,
) -> EngineConfig:
    """Small, valid engine configurations that make the scheduler's hard cases common.

    The KV cache is often just big enough for one ``max_model_len`` request
    (so preemption is frequent), the token budget often barely above
    ``max_num_seqs`` (so prefills are chunked), and the long-prefill threshold,
    prefix caching, chunked prefill and full-sequence admission are each on
    or off; async scheduling and the priority policy too. ``focus`` (one of
    :data:`FOCUSES`; drawn if not given) leans the draw towards one situation.
    Pass a strategy for a field to pin or narrow it.
    """
    if focus is None:
        focus = draw(_FOCUS)
    bs = draw(block_size if block_size is not None else _BLOCK_SIZES)
    mml = draw(max_model_len if max_model_len is not None else _MAX_MODEL_LEN)
    if focus in ("stop rules", "preemption") and max_model_len is None:
        mml = max(mml, 24 if focus == "stop rules" else 8)
    seqs = draw(max_num_seqs if max_num_seqs is not None else _MAX_NUM_SEQS)
    if focus == "admission" and max_num_seqs is None:
        seqs = 2 + seqs % 3
    elif focus == "preemption" and max_num_seqs is None:
        seqs = 3 + seqs % 3
    chunked = draw(enable_chunked_prefill if enable_chunked_prefill is not None else _BOOL)
    if focus == "preemption" and enable_chunked_prefill is None:
        chunked = chunked or draw(_BOOL)  # budget-sized chunks, so a victim's tokens matter
    caching = draw(enable_prefix_caching if enable_prefix_caching is not None else _BOOL)
    if focus == "prefix cache" and enable_prefix_caching is None:
        caching = True
    elif focus == "preemption" and enable_prefix_caching is None:
        caching = caching or draw(_BOOL)  # resumes hit what they computed before
    if focus in ("prefix cache", "preemption") and block_size is None:
        bs = min(bs, 4)  # decodes fill blocks often
    min_blocks = _cdiv(mml, bs) + 1  # one full-length request, plus the null block
    kv = draw(_KV_SHAPE)
    # A tight cache makes the prefix cache and the full-sequence gate matter; with
    # chunked prefill off, room for several whole prompts makes the budget matter.
    if kv == "roomy" and (
        focus in ("prefix cache", "preemption") or (focus == "admission" and chunked)
    ):
        kv = "tight"
    if kv == "one request":
        blocks = min_blocks
    elif kv == "tight":
        blocks = _pick(draw, min_blocks, min_blocks + 3)
    else:
        blocks = _pick(draw, min_blocks, 4 * min_blocks + 4)
    tiny_budget = draw(_BUDGET_SHAPE) == "tiny" or focus in ("admission", "preemption")
    if chunked and tiny_budget:
        budget = _pick(draw, seqs, seqs + 8)
    elif tiny_budget:
        # Chunked prefill off: barely one whole prompt fits, so later prompts wait.
        budget = _pick(draw, max(mml, seqs), max(mml, seqs) + 4)
    else:
        budget = _pick(draw, max(mml, seqs) if not chunked else seqs, 2 * mml + 8)
    with_threshold: bool = draw(_BOOL) or (focus == "admission" and draw(_BOOL))
    threshold = _pick(draw, 1, mml) if with_threshold else 0
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
        async_scheduling=draw(async_scheduling if async_scheduling is not None else _BOOL),
        policy=draw(policy if policy is not None else _POLICY),
    )


@st.composite
def prompts(
    draw: st.DrawFn,
    config: EngineConfig,
    prefixes: Sequence[Sequence[int]] = (),
    *,
    focus: str = "any",
) -> list[int]:
    """A prompt of token ids that fits ``config``, often of an edge size, often sharing a prefix.

    Lengths favour 1, a block, a block plus or minus one, two blocks and
    ``max_model_len - 1``. Tokens come from a small alphabet, and with
    ``prefixes`` a prompt often starts with one of them, so prefix-cache hits
    (and partial hits) are common. Under the ``stop rules`` focus prompts are
    short (room for outputs); under ``prefix cache`` they share a prefix more often.
    """
    top = config.max_model_len - 1
    if focus == "stop rules":
        top = min(top, 8)
    bs = config.block_size
    edges = sorted({n for n in (1, bs - 1, bs, bs + 1, 2 * bs, top) if 1 <= n <= top})
    at_edge: bool = draw(_BOOL)
    n = edges[draw(_SMALL) % len(edges)] if at_edge else _pick(draw, 1, top)
    if focus == "admission" and draw(_BOOL):
        # Long prompts: two of them overflow the budget or the cache.
        n = _pick(draw, max(1, top // 2), top)
    head: list[int] = []
    use_prefix: bool = draw(_BOOL) or (focus == "prefix cache" and draw(_BOOL))
    if prefixes and use_prefix:
        head = list(prefixes[draw(_SMALL) % len(prefixes)])[:n]
    return head + _tokens(draw, n - len(head))


def text_prompts(max_bytes: int) -> st.SearchStrategy[str]:
    """Non-empty text of at most ``max_bytes`` UTF-8 bytes (the byte tokenizer's tokens)."""
    return st.text(min_size=1, max_size=max_bytes).filter(
        lambda s: 0 < len(s.encode("utf-8")) <= max_bytes
    )


@st.composite
def sampling_params(draw: st.DrawFn, *, focus: str = "any") -> SamplingParams:
    """Valid sampling parameters: lengths, min_tokens, stop tokens and strings, output kinds.

    ``max_tokens`` is 1..16 or None (until ``max_model_len``); ``min_tokens``
    is often at an edge (``max_tokens`` or one less) and may exceed what
    ``max_model_len`` leaves room for, which the engine must still finish.
    Stop strings include characters of two to four UTF-8 bytes. Under the
    ``stop rules`` focus every request has stop strings and a ``min_tokens``.
    """
    stop_rules = focus == "stop rules"
    max_tokens = draw(_MAX_TOKENS)
    if focus == "preemption" and max_tokens is not None:
        max_tokens = max(max_tokens, 8)  # long decodes outgrow the cache
    if stop_rules and max_tokens is not None:
        max_tokens = max(max_tokens, 4)
    top = max_tokens if max_tokens is not None else 16
    shape = draw(_MIN_TOKENS_SHAPE)
    if stop_rules and shape == "none":
        shape = "any"
    if shape == "max_tokens":
        min_tokens = top
    elif shape == "max_tokens - 1":
        min_tokens = top - 1
    elif shape == "any":
        min_tokens = draw(_SMALL) % (top + 1)
    else:
        min_tokens = 0
    with_stop_strings: bool = draw(_BOOL) or stop_rules
    return SamplingParams(
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        stop_token_ids=draw(_STOP_IDS),
        stop=draw(_STOP_STRINGS) if with_stop_strings else (),
        ignore_eos=draw(_BOOL),
        temperature=draw(_TEMPERATURE),
        top_p=draw(_TOP_P),
        top_k=draw(_TOP_K),
        seed=draw(_SEED),
        output_kind=draw(_OUTPUT_KIND),
    )


@st.composite
def token_scripts(draw: st.DrawFn, params: SamplingParams, *, focus: str = "any") -> dict[int, int]:
    """What the model emits at output positions 0..17 (filler elsewhere).

    EOS or one of the request's stop tokens at a few positions and, for a
    request with stop strings, the UTF-8 bytes of one of them (whole, or cut
    short) from some position on, often around ``min_tokens``.
    """
    choices = [EOS_TOKEN_ID, *params.stop_token_ids]
    script = {p: choices[draw(_SMALL) % len(choices)] for p in draw(_POSITIONS)}
    write_stop: bool = draw(_BOOL) or focus == "stop rules"
    if params.stop and write_stop:
        text = params.stop[draw(_SMALL) % len(params.stop)].encode()
        cut: bool = draw(_BOOL)
        if cut:
            text = text[: 1 + draw(_SMALL) % len(text)]
        near_min_tokens: bool = draw(_BOOL) or focus == "stop rules"
        if near_min_tokens:
            # The last byte lands at min_tokens - 1 (the gate's edge: not yet
            # checked) half the time, else one before or after.
            offset = (0, 0, -1, 1)[draw(_ONE_IN_FOUR)]
            start = max(0, params.min_tokens - len(text) + offset)
        else:
            start = draw(_SMALL)
        for i, byte in enumerate(text):
            script[start + i] = byte
    return script


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
    prefixes feed :func:`prompts`. Each example leans towards one of
    :data:`FOCUSES`, so rare combinations (a prefix-cache hit on a tight cache
    under the full-sequence gate, a stop string completed at ``min_tokens``)
    are common somewhere in a few hundred examples.
    """
    focus = draw(_FOCUS)
    config = draw(configs if configs is not None else engine_configs(focus=focus))
    bs = config.block_size
    top = max(bs, min(3 * bs, config.max_model_len - 1))
    if focus == "prefix cache":
        # Whole blocks, so a shared prefix is a cache hit.
        prefixes = [_tokens(draw, bs * max(1, _pick(draw, 1, top) // bs)) for _ in range(2)]
    else:
        prefixes = [_tokens(draw, _pick(draw, bs, top)) for _ in range(2)]
    n = 1 + draw(_SMALL) % max_requests
    if focus in ("prefix cache", "admission", "preemption"):
        n = max(n, min(3, max_requests))
    requests = []
    script: dict[str, dict[int, int]] = {}
    for i in range(n):
        rid = f"r{i}"
        params = draw(sampling_params(focus=focus))
        priority = draw(PRIORITIES)
        if focus == "preemption":
            # Later requests more urgent: the victim is then not the last running one.
            priority = max(0, priority + 2 - i)
        # Under the prefix cache focus most requests come later, to hit what is cached.
        later: bool = draw(_BOOL) or (focus == "prefix cache" and draw(_BOOL))
        if focus == "admission":
            later = later and draw(_BOOL)
        requests.append(
            WorkloadRequest(
                id=rid,
                prompt_token_ids=draw(prompts(config, prefixes, focus=focus)),
                sampling_params=params,
                arrival=_pick(draw, 0, max_arrival) if later else 0,
                abort=_pick(draw, 0, max_arrival + 8) if draw(_BOOL) else None,
                priority=priority,
            )
        )
        tokens = draw(token_scripts(params, focus=focus))
        if tokens:
            script[rid] = tokens
    return Scenario(config, tuple(requests), ScriptedSampler(script))
