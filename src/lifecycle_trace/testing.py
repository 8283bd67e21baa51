"""Testing helpers for people who change the scheduler: strategies, a runner, a state machine.

Everything here is built on hypothesis and the invariant checker:

- strategies for the engine's inputs: :func:`engine_configs` (tiny KV caches
  so preemption is common, tiny token budgets, long-prefill threshold, prefix
  caching, chunked prefill, full-sequence admission on and off),
  :func:`prompts` and :func:`text_prompts` (edge sizes: 1 token, a block,
  a block plus or minus one, ``max_model_len - 1``; shared prefixes),
  :func:`sampling_params`, and :func:`scenarios` (a config, requests with
  arrival and abort steps, and a :class:`ScriptedSampler` that emits EOS or
  stop tokens at chosen output positions);
- :func:`run_scenario` and :func:`check_scenario`, which drive an engine
  through a scenario with the checker live and compare the state rebuilt from
  events with the engine's own state after every step;
- :func:`assert_same_lifecycle` (from :mod:`lifecycle_trace.diffing`), which
  runs one scenario on two engines and reports where a request's lifecycle
  parts, for differential tests (minivllm against the real vLLM scheduler, or
  a scheduler against a changed one);
- :class:`EngineStateMachine`, a ``RuleBasedStateMachine`` (add, abort, step;
  invariants after every rule) to subclass for your own engine or scheduler.

Cost: a scenario is a few requests on an engine of a few dozen tokens, so one
run takes about a millisecond; a few thousand fit in a CI run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from lifecycle_trace.checker import InvariantChecker, Violation, format_violations
from lifecycle_trace.diffing import LifecycleMismatch, assert_same_lifecycle
from lifecycle_trace.timeline import Timeline, TimelineBuilder
from minivllm.bus import Handler
from minivllm.config import EngineConfig
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import Event
from minivllm.model_executor.dummy import DummyModelRunner
from minivllm.request import Request
from minivllm.sampling_params import SamplingParams
from minivllm.tokenizer import ByteTokenizer
from minivllm.workload import Workload, WorkloadRequest

__all__ = [
    "EOS_TOKEN_ID",
    "FILLER_TOKEN_ID",
    "STOP_TOKEN_CHOICES",
    "EngineStalled",
    "EngineStateMachine",
    "FakeClock",
    "InvariantViolationError",
    "LifecycleMismatch",
    "Scenario",
    "ScriptedSampler",
    "assert_no_violations",
    "assert_same_lifecycle",
    "check_scenario",
    "engine_configs",
    "prompts",
    "run_scenario",
    "sampling_params",
    "scenarios",
    "state_mismatches",
    "step_limit",
    "text_prompts",
    "token_scripts",
]

EOS_TOKEN_ID = ByteTokenizer.eos_token_id
"""The engine's EOS token (stops a request unless ``ignore_eos``)."""

FILLER_TOKEN_ID = 7
"""What a :class:`ScriptedSampler` emits where its script says nothing (never a stop token)."""

STOP_TOKEN_CHOICES = (1, 2, 3)
"""The token ids :func:`sampling_params` picks ``stop_token_ids`` from."""


def _cdiv(a: int, b: int) -> int:
    return -(a // -b)


# -- running ------------------------------------------------------------------


class FakeClock:
    """A deterministic nanosecond clock: each call returns the previous value plus ``tick``."""

    def __init__(self, start: int = 0, tick: int = 1_000) -> None:
        self.now = start
        self.tick = tick

    def __call__(self) -> int:
        self.now += self.tick
        return self.now


@attrs.frozen
class ScriptedSampler:
    """A ``sample_fn`` for ``DummyModelRunner``: ``script[request_id][position]``, else filler.

    ``script`` maps a request id to ``{output position: token id}``; a request
    resumed after preemption asks again for the same position and gets the
    same token, as a deterministic model would.
    """

    script: Mapping[str, Mapping[int, int]] = attrs.field(factory=dict)
    filler: int = FILLER_TOKEN_ID

    def __call__(self, request: Request) -> int:
        """The token for the request's next output position."""
        tokens = self.script.get(request.request_id)
        if tokens is None:
            return self.filler
        return tokens.get(len(request.output_token_ids), self.filler)


@attrs.frozen
class Scenario:
    """An engine configuration, requests with arrival and abort steps, and the model's script."""

    config: EngineConfig
    requests: tuple[WorkloadRequest, ...]
    sampler: ScriptedSampler = ScriptedSampler()

    @property
    def engine_kwargs(self) -> dict[str, Any]:
        """The configuration as ``LLMEngine`` keyword arguments."""
        return attrs.asdict(self.config)

    @property
    def workload(self) -> Workload:
        """The scenario as a replayable :class:`minivllm.workload.Workload`."""
        return Workload(self.engine_kwargs, self.requests)

    def model(self) -> DummyModelRunner:
        """A fresh model runner that samples by the script."""
        return DummyModelRunner(sample_fn=self.sampler)


class EngineStalled(AssertionError):
    """The engine did not drain within :func:`step_limit` steps: a request stopped progressing."""


def step_limit(scenario: Scenario) -> int:
    """A generous bound on the steps a correct scheduler needs to drain ``scenario``.

    Each step advances the oldest running request by at least one token, and
    a request's work is its prompt plus its outputs, recomputed after each
    preemption; the factor ``len(requests) + 1`` bounds the recomputation.
    """
    max_model_len = scenario.config.max_model_len
    work = 0
    for r in scenario.requests:
        prompt = len(r.prompt_token_ids)
        outputs = max_model_len - prompt
        if r.sampling_params.max_tokens is not None:
            outputs = min(outputs, r.sampling_params.max_tokens)
        work += prompt + outputs
    last_arrival = max((r.arrival for r in scenario.requests), default=0)
    return last_arrival + (len(scenario.requests) + 1) * work + 16


def run_scenario(
    scenario: Scenario,
    observers: Iterable[Handler] = (),
    *,
    clock: Callable[[], int] | None = None,
    after_step: Callable[[LLMEngine], None] | None = None,
) -> LLMEngine:
    """Drive a fresh engine through ``scenario`` until it drains; return the engine.

    Before step ``s`` the requests arriving at ``s`` are added and those whose
    abort step is ``s`` are aborted (if still live), then one step runs, then
    ``after_step(engine)``. Observers are subscribed before anything happens
    and their exceptions propagate. Raises :class:`EngineStalled` past
    :func:`step_limit`.
    """
    engine = LLMEngine(
        scenario.model(),
        **scenario.engine_kwargs,
        observers=observers,
        clock=clock if clock is not None else FakeClock(),
        raise_observer_errors=True,
    )
    pending = sorted(scenario.requests, key=lambda r: r.arrival)
    aborts: dict[int, list[str]] = {}
    for r in scenario.requests:
        if r.abort is not None:
            aborts.setdefault(r.abort, []).append(r.id)
    limit = step_limit(scenario)
    step = 0
    while True:
        while pending and pending[0].arrival <= step:
            r = pending.pop(0)
            engine.add_request(list(r.prompt_token_ids), r.sampling_params, request_id=r.id)
        live = [rid for rid in aborts.get(step, ()) if rid in engine.scheduler.requests]
        if live:
            engine.abort_request(live)
        if not engine.has_unfinished_requests() and not pending:
            return engine
        if step >= limit:
            raise EngineStalled(
                f"not drained after {limit} steps; still live: {engine.scheduler.requests}"
            )
        engine.step()
        if after_step is not None:
            after_step(engine)
        step += 1


class InvariantViolationError(AssertionError):
    """The invariant checker found violations; the message lists them."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        super().__init__(
            f"{len(self.violations)} invariant violation(s):\n{format_violations(self.violations)}"
        )


def assert_no_violations(violations: Sequence[Violation]) -> None:
    """Raise :class:`InvariantViolationError` listing ``violations`` if there are any."""
    if violations:
        raise InvariantViolationError(violations)


def state_mismatches(engine: LLMEngine, timelines: Mapping[str, Timeline]) -> list[str]:
    """Where the state rebuilt from events differs from the engine's own state (empty: none).

    Compares every live request's status and counters with its timeline, and
    checks that every timeline still unfinished is live in the engine.
    """
    out = []
    live = engine.scheduler.requests
    for rid, r in live.items():
        t = timelines.get(rid)
        if t is None:
            out.append(f"request {rid}: live in the engine, absent from the events")
            continue
        have = (
            t.status,
            t.num_computed_tokens,
            t.num_tokens,
            t.num_preemptions,
            t.num_cached_tokens,
        )
        want = (
            r.status,
            r.num_computed_tokens,
            r.num_tokens,
            r.num_preemptions,
            r.num_cached_tokens,
        )
        if have != want:
            out.append(
                f"request {rid}: events say (status, computed, tokens, preemptions, cached) = "
                f"{have}, the engine says {want}"
            )
    for rid, t in timelines.items():
        if not t.finished and rid not in live:
            out.append(f"request {rid}: unfinished in the events, gone from the engine")
    return out


def check_scenario(scenario: Scenario) -> list[Event]:
    """Run ``scenario`` with every check on; return its event log, or raise AssertionError.

    Checks, after every step, that the invariant checker found nothing and
    that the state rebuilt from events equals the engine's state; at the end,
    the end-of-stream checks (all finished, all blocks free).
    """
    checker = InvariantChecker()
    builder = TimelineBuilder()
    log: list[Event] = []

    def after_step(engine: LLMEngine) -> None:
        assert_no_violations(checker.violations)
        mismatches = state_mismatches(engine, builder.timelines())
        if mismatches:
            raise AssertionError("state rebuilt from events differs:\n" + "\n".join(mismatches))

    run_scenario(scenario, (log.append, checker, builder), after_step=after_step)
    assert_no_violations(checker.finish())
    return log


# -- strategies ---------------------------------------------------------------
#
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


# -- the state machine ----------------------------------------------------------


class EngineStateMachine(RuleBasedStateMachine):
    """Random add / abort / step sequences on one engine, with every invariant checked.

    After every rule the invariant checker's violations must be empty and the
    state rebuilt from events (``TimelineBuilder``) must equal the engine's;
    at the end the engine is drained and the end-of-stream checks run. A
    failure shrinks to the shortest sequence of operations.

    To test your own engine or scheduler, subclass and override
    :meth:`make_engine` (or set ``configs``), then expose ``TestCase``::

        class MySchedulerMachine(EngineStateMachine):
            def make_engine(self, config, model):
                engine = super().make_engine(config, model)
                engine.scheduler = MyScheduler(engine.config, engine.bus)
                return engine

        TestMyScheduler = MySchedulerMachine.TestCase
    """

    configs: ClassVar[st.SearchStrategy[EngineConfig]] = engine_configs()
    """Where the machine's engine configuration is drawn from."""

    max_live_requests: ClassVar[int] = 6
    """Adds are refused beyond this many unfinished requests, to keep runs short."""

    def __init__(self) -> None:
        super().__init__()
        self.script: dict[str, dict[int, int]] = {}
        self.checker = InvariantChecker()
        self.builder = TimelineBuilder()
        self.engine: LLMEngine | None = None
        self.prefixes: list[list[int]] = []

    def make_engine(self, config: EngineConfig, model: DummyModelRunner) -> LLMEngine:
        """Build the engine under test (override to plug in your own scheduler)."""
        return LLMEngine(model, **attrs.asdict(config), clock=FakeClock())

    def _sample(self, request: Request) -> int:
        tokens = self.script.get(request.request_id, {})
        return tokens.get(len(request.output_token_ids), FILLER_TOKEN_ID)

    @property
    def live(self) -> LLMEngine:
        """The engine under test (set by the first rule)."""
        assert self.engine is not None
        return self.engine

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        """Build the engine from a drawn configuration and subscribe the checks."""
        config = data.draw(self.configs, label="config")
        self.engine = self.make_engine(config, DummyModelRunner(sample_fn=self._sample))
        self.engine.bus.subscribe(self.checker)
        self.engine.bus.subscribe(self.builder)
        self.engine.bus.raise_errors = True
        bs = config.block_size
        length = st.integers(bs, max(bs, min(2 * bs, config.max_model_len - 1)))
        self.prefixes = [[10 + i % 4 for i in range(data.draw(length))] for _ in range(2)]

    @precondition(lambda self: len(self.live.scheduler.requests) < self.max_live_requests)
    @rule(data=st.data())
    def add(self, data: st.DataObject) -> None:
        """Add a request: a token or text prompt, sampling parameters, EOS / stop positions."""
        engine = self.live
        as_tokens = prompts(engine.config, self.prefixes)
        as_text = text_prompts(engine.config.max_model_len - 1)
        prompt = data.draw(st.one_of(as_tokens, as_text), label="prompt")
        params = data.draw(sampling_params(), label="params")
        rid = engine.add_request(prompt, params)
        script = data.draw(token_scripts(params), label="script")
        if script:
            self.script[rid] = script

    @precondition(lambda self: bool(self.live.scheduler.requests))
    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        """Abort one live request (waiting, running or preempted)."""
        rid = data.draw(st.sampled_from(sorted(self.live.scheduler.requests)), label="abort")
        self.live.abort_request(rid)

    @rule()
    def step(self) -> None:
        """Run one engine step."""
        self.live.step()

    @invariant()
    def no_violations(self) -> None:
        """The invariant checker has found nothing so far."""
        assert_no_violations(self.checker.violations)

    @invariant()
    def events_rebuild_engine_state(self) -> None:
        """The state rebuilt from events equals the engine's state."""
        if self.engine is None:
            return
        mismatches = state_mismatches(self.engine, self.builder.timelines())
        assert not mismatches, "state rebuilt from events differs:\n" + "\n".join(mismatches)

    def teardown(self) -> None:
        """Drain the engine and run the end-of-stream checks."""
        engine = self.engine
        if engine is None:
            return
        for _ in range(10_000):
            if not engine.has_unfinished_requests():
                break
            engine.step()
            assert_no_violations(self.checker.violations)
        else:
            raise EngineStalled(f"not drained after 10000 steps: {engine.scheduler.requests}")
        assert_no_violations(self.checker.finish())
