"""The engine: ``add_request``, ``step``, ``abort_request`` (vLLM's ``LLMEngine``).

One ``step()`` is one call of the engine core's step function: ``EngineCore.step``
(``schedule()``, the model runs the batch, ``update_from_output()``) or, under
async scheduling, ``EngineCore.step_with_batch_queue``. Tokenizing, request
validation and making ``RequestOutput``s happen here. Everything that happens
is emitted on ``engine.bus``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from collections.abc import Container
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from collections.abc import Set
from types import MappingProxyType
from typing import Any
from typing import overload

from minivllm import envs
from minivllm.bus import EventBus
from minivllm.bus import Handler
from minivllm.bus import resolve_observers
from minivllm.config import EngineConfig
from minivllm.core.sched.scheduler import Scheduler
from minivllm.engine.arg_utils import EngineArgs
from minivllm.engine.core import EngineCore
from minivllm.engine.core import EngineCoreStep
from minivllm.engine.core import StepFailedError
from minivllm.engine.guard import CallGuard
from minivllm.engine.guard import exclusive
from minivllm.events import EngineConfigured
from minivllm.events import StepFinished
from minivllm.events import StepStarted
from minivllm.inputs import AddRequestCall
from minivllm.inputs import PromptType
from minivllm.inputs import add_request_orders
from minivllm.inputs import parse_add_request
from minivllm.inputs import parse_prompt_dict
from minivllm.model_executor.dummy import DummyModelRunner
from minivllm.model_executor.runner import ModelRunner
from minivllm.outputs import CompletionOutput
from minivllm.outputs import RequestOutput
from minivllm.request import Request
from minivllm.request import RequestStatus
from minivllm.sampling_params import RequestOutputKind
from minivllm.sampling_params import SamplingParams
from minivllm.tokenizer import ByteTokenizer
from minivllm.validation import INT64_MAX
from minivllm.validation import INT64_MIN
from minivllm.validation import UINT64_MAX
from minivllm.validation import check_bool
from minivllm.validation import check_int
from minivllm.validation import check_number
from minivllm.validation import check_str
from minivllm.validation import describe
from minivllm.validation import is_integer

OBSERVERS_ENV = envs.OBSERVERS
"""Comma-separated observer names (entry points) attached to every new engine."""

LOGGING_LEVEL_ENV = envs.LOGGING_LEVEL
"""``DEBUG`` or ``INFO`` attaches the ``json-log`` observer, as ``VLLM_LOGGING_LEVEL`` does."""

DEBUG_LOG_OBSERVER = "json-log"


def _observers_from_env() -> list[str]:
    names = envs.observer_names()
    level = envs.logging_level()  # validated here, so a typo fails at construction
    envs.configure_logging()
    if level is not None and level <= logging.INFO and DEBUG_LOG_OBSERVER not in names:
        names.append(DEBUG_LOG_OBSERVER)
    return names


_CUMULATIVE = RequestOutputKind.CUMULATIVE
_DELTA = RequestOutputKind.DELTA
_FINAL_ONLY = RequestOutputKind.FINAL_ONLY
# Looking an enum member up on its class costs about 150 ns in Python 3.11.
_PREEMPTED = RequestStatus.PREEMPTED


def _make_model_runner(model: str | ModelRunner, config: EngineConfig, seed: int) -> ModelRunner:
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, str):
        if isinstance(model, type) or not callable(getattr(model, "execute_model", None)):
            raise ValueError(
                f"model must be 'dummy', 'tiny', a path to an .npz file or an object with "
                f"execute_model(), got {describe(model)}"
            )
        return model
    if model == "dummy":
        return DummyModelRunner()
    if model == "tiny" or model.endswith(".npz"):
        from minivllm.model_executor.tiny import TinyModelRunner

        runner: ModelRunner = TinyModelRunner.from_name(model, config=config, seed=seed)
        return runner
    raise ValueError(f"unknown model {model!r}; choose 'dummy', 'tiny' or a path to an .npz file")


def _check_clock(clock: object) -> None:
    """A clock must be callable (its readings are checked as they are first used)."""
    if not callable(clock):
        raise ValueError(
            f"clock must be a callable returning integer nanoseconds (like time.monotonic_ns), "
            f"got {describe(clock)}"
        )


def _check_reading(reading: object, clock: object) -> int:
    """A clock's reading, if it is integer nanoseconds (a log's ``ts_ns``)."""
    if type(reading) is not int or not 0 <= reading <= INT64_MAX:
        raise ValueError(
            f"clock must return integer nanoseconds from 0 to 2**63-1 (like time.monotonic_ns), "
            f"got {describe(reading)} from {describe(clock)}"
        )
    return reading


def _observer_list(observers: object) -> list[Handler | str]:
    """The observers as a list: each a handler (callable) or a registered observer's name."""
    if isinstance(observers, str | bytes | Mapping) or not isinstance(observers, Iterable):
        hint = f" (for one, observers=[{observers!r}])" if isinstance(observers, str) else ""
        raise ValueError(
            f"observers must be a list of handlers or observer names, got "
            f"{describe(observers)}{hint}"
        )
    found = list(observers)
    for i, observer in enumerate(found):
        if not (callable(observer) or isinstance(observer, str)):
            raise ValueError(
                f"observers[{i}] must be a handler (a callable) or an observer's name, got "
                f"{describe(observer)}"
            )
    return found


_BYTES_PER_BLOCK = 128
"""What one KV cache block costs the block pool in memory (its Python object and links)."""


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation, where the system says."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _check_memory(config: EngineConfig) -> None:
    """Refuse a block pool larger than the memory there is (instead of being killed for it)."""
    needed = config.num_gpu_blocks * _BYTES_PER_BLOCK
    if needed < 1 << 30:
        return  # under a GiB: not worth a look
    available = _available_memory()
    if available is not None and needed > available:
        raise ValueError(
            f"num_gpu_blocks={config.num_gpu_blocks} needs about {needed / 2**30:.1f} GiB of "
            f"memory for the block pool ({_BYTES_PER_BLOCK} bytes a block), more than the "
            f"{available / 2**30:.1f} GiB available; use fewer blocks"
        )


_PROMPT_KEYS = frozenset({"prompt", "prompt_token_ids"})


def _prompt_expected(prompt: object) -> str:
    return (
        f"prompt must be a string, a list of token ids, or a prompt dict "
        f"({{'prompt': text}} or {{'prompt_token_ids': [...]}}), got {describe(prompt)}"
    )


def _raised_in_runner(exc: BaseException) -> bool:
    """Whether ``exc`` came out of the model runner's call, where the engine changes nothing.

    Everywhere else an interrupt (Ctrl-C) can land between a change and the
    note that undoes it.
    """
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is _EXECUTE_MODEL:
            return True
        tb = tb.tb_next
    return False


_EXECUTE_MODEL = EngineCore.execute_model.__code__


class LLMEngine:
    """An inference engine with vLLM's v1 scheduling.

    ``model`` is ``"dummy"`` (default), ``"tiny"``, a path to tiny-model
    weights (``.npz``), or any object with ``execute_model``.
    ``async_scheduling`` schedules the next batch while the model runs the
    previous one (vLLM's default on a GPU); ``policy`` is ``"fcfs"`` or
    ``"priority"``. ``observers`` are handlers (or registered observer names)
    subscribed to every event; ``clock`` returns nanoseconds, stamps events
    and gives each request its arrival time; ``engine_id`` names this engine
    in its logs.
    """

    def __init__(
        self,
        model: str | ModelRunner = "dummy",
        *,
        max_num_seqs: int = 128,
        max_num_batched_tokens: int = 2048,
        block_size: int = 16,
        num_gpu_blocks: int = 2048,
        max_model_len: int = 1024,
        enable_chunked_prefill: bool = True,
        long_prefill_token_threshold: int = 0,
        enable_prefix_caching: bool = False,
        scheduler_reserve_full_isl: bool = True,
        async_scheduling: bool = False,
        policy: str = "fcfs",
        seed: int = 0,
        observers: Iterable[Handler | str] = (),
        clock: Callable[[], int] = time.monotonic_ns,
        engine_id: str = "engine-0",
        raise_observer_errors: bool = False,
    ) -> None:
        seed = check_int("seed", seed, low=INT64_MIN, high=UINT64_MAX)
        check_str("engine_id", engine_id)
        check_bool("raise_observer_errors", raise_observer_errors)
        _check_clock(clock)
        observers = _observer_list(observers)
        self.config = EngineConfig(
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
            block_size=block_size,
            num_gpu_blocks=num_gpu_blocks,
            max_model_len=max_model_len,
            enable_chunked_prefill=enable_chunked_prefill,
            long_prefill_token_threshold=long_prefill_token_threshold,
            enable_prefix_caching=enable_prefix_caching,
            scheduler_reserve_full_isl=scheduler_reserve_full_isl,
            async_scheduling=async_scheduling,
            policy=policy,
        )
        _check_memory(self.config)
        self._guard = CallGuard()
        self.engine_id = engine_id
        self.seed = seed
        self.tokenizer = ByteTokenizer()
        self.bus = EventBus(clock=clock, raise_errors=raise_observer_errors)
        self.engine_core = EngineCore(
            self.config,
            _make_model_runner(model, self.config, seed),
            self.bus,
            self.tokenizer.vocab_size,
        )
        self.step_index = 0
        # What the last step() scheduled and processed (for drivers and tests).
        self.last_step: EngineCoreStep | None = None
        self._next_request_id = 0
        self._announced = False
        for handler in resolve_observers([*observers, *_observers_from_env()]):
            self.bus.subscribe(handler)
        self._on_step_started = self.bus.channel(StepStarted)
        self._on_step_finished = self.bus.channel(StepFinished)

    @classmethod
    def from_engine_args(cls, engine_args: EngineArgs, **kwargs: Any) -> LLMEngine:
        """An engine from vLLM-named arguments (vLLM's ``LLMEngine.from_engine_args``).

        ``kwargs`` are the engine's own options vLLM has no argument for
        (``observers``, ``clock``, ``engine_id``, ``raise_observer_errors``).
        """
        if not isinstance(engine_args, EngineArgs):
            raise TypeError(f"engine_args must be an EngineArgs, got {type(engine_args).__name__}")
        return cls(**engine_args.engine_kwargs(), **kwargs)

    @property
    def scheduler(self) -> Scheduler:
        """The engine core's scheduler (assign a subclass instance to swap it)."""
        return self.engine_core.scheduler

    @scheduler.setter
    def scheduler(self, scheduler: Scheduler) -> None:
        self.engine_core.scheduler = scheduler

    @property
    def model_runner(self) -> ModelRunner:
        """The engine core's model runner."""
        return self.engine_core.model_runner

    # -- the public API ------------------------------------------------------

    @overload
    def add_request(
        self,
        prompt: PromptType,
        sampling_params: SamplingParams | None = None,
        request_id: str | None = None,
        priority: int = 0,
        arrival_time: float | None = None,
    ) -> str: ...

    @overload
    def add_request(
        self,
        request_id: str,
        prompt: PromptType,
        params: SamplingParams | None,
        arrival_time: float | None = None,
        lora_request: None = None,
        tokenization_kwargs: Mapping[str, Any] | None = None,
        trace_headers: Mapping[str, str] | None = None,
        priority: int = 0,
        prompt_text: str | None = None,
    ) -> str: ...

    def add_request(self, *args: Any, **kwargs: Any) -> str:
        """Validate and queue a request; return its id. Nothing changes if validation fails.

        Two argument orders are accepted, told apart by the second argument:
        vLLM's ``add_request(request_id, prompt, params, arrival_time=None,
        ..., priority=0, prompt_text=None)`` when it is a prompt, and the lab's
        ``add_request(prompt, sampling_params=None, request_id=None,
        priority=0, arrival_time=None)`` otherwise (a ``SamplingParams``, None,
        or nothing). A keyword ``params`` also selects vLLM's order. A prompt
        is a string, a list of token ids, or one of vLLM's prompt dicts
        (``{"prompt": text}``, ``{"prompt_token_ids": [...]}``); see
        :mod:`minivllm.inputs`.

        ``priority`` matters under ``policy="priority"``: lower runs first, and
        among equal priorities the earlier ``arrival_time`` (the engine clock's
        reading at this call unless given).
        """
        return self._add_request(parse_add_request(args, kwargs, _ADD_REQUEST_ORDERS))

    @exclusive
    def _add_request(self, call: AddRequestCall) -> str:
        self._announce()
        request = self._make_request(call)
        self.scheduler.add_request(request)
        return request.request_id

    @exclusive
    def _add_requests(self, calls: Sequence[tuple[PromptType, SamplingParams, int]]) -> list[str]:
        """Queue ``(prompt, params, priority)`` each, all or none: every one is checked first."""
        self._announce()
        requests: list[Request] = []
        taken: set[str] = set()
        next_request_id = self._next_request_id
        for i, (prompt, params, priority) in enumerate(calls):
            try:
                request = self._make_request(
                    AddRequestCall(prompt, params, None, priority, None), taken
                )
            except (ValueError, TypeError) as exc:
                self._next_request_id = next_request_id  # none queued: no id used up
                raise type(exc)(f"prompt {i}: {exc}") from None
            taken.add(request.request_id)
            requests.append(request)
        for request in requests:
            self.scheduler.add_request(request)
        return [r.request_id for r in requests]

    def _make_request(self, call: AddRequestCall, taken: Container[str] = ()) -> Request:
        """A checked request, not queued: nothing changes if a check fails."""
        prompt, sampling_params, request_id, priority, arrival_time = call
        if sampling_params is None:
            sampling_params = SamplingParams()
        elif not isinstance(sampling_params, SamplingParams):
            raise TypeError(
                f"sampling_params must be a SamplingParams, got {describe(sampling_params)}"
            )
        prompt_text, prompt_token_ids = self._tokenize(prompt)
        max_model_len = self.config.max_model_len
        if len(prompt_token_ids) >= max_model_len:
            raise ValueError(
                f"prompt is {len(prompt_token_ids)} tokens long; it must be shorter than "
                f"max_model_len ({max_model_len}) to leave room for one output token"
            )
        if request_id is not None:
            if not isinstance(request_id, str) or not request_id:
                raise ValueError(
                    f"request_id must be a non-empty string, got {describe(request_id)}"
                )
            if request_id in self.scheduler.requests:
                raise ValueError(f"request_id {request_id!r} is already in use by a live request")
        priority = check_int("priority", priority, low=INT64_MIN)
        if arrival_time is None:
            arrival_time = _check_reading(self.bus.clock(), self.bus.clock)
        else:
            check_number("arrival_time", arrival_time)
        if request_id is None:  # last: a refused request does not use up an id
            request_id = self._new_request_id(taken)
        max_tokens = sampling_params.max_tokens
        if max_tokens is None:
            max_tokens = max_model_len - len(prompt_token_ids)
        eos = None if sampling_params.ignore_eos else self.tokenizer.eos_token_id
        return Request(
            request_id,
            prompt_token_ids,
            sampling_params,
            max_tokens=max_tokens,
            eos_token_id=eos,
            arrival_time=arrival_time,
            prompt=prompt_text,
            priority=priority,
        )

    @exclusive
    def abort_request(self, request_ids: str | Iterable[str]) -> None:
        """Abort requests by id (one or a list), wherever they are; unknown ids are ignored."""
        if not isinstance(request_ids, str):
            if isinstance(request_ids, bytes | Mapping) or not isinstance(request_ids, Iterable):
                raise ValueError(
                    f"request_ids must be a request id or a list of them, got "
                    f"{describe(request_ids)}"
                )
            request_ids = list(request_ids)
            for i, request_id in enumerate(request_ids):
                if not isinstance(request_id, str):
                    raise ValueError(
                        f"request_ids[{i}] must be a request id (a string), got "
                        f"{describe(request_id)}"
                    )
        self._announce()
        self.scheduler.finish_requests(request_ids, RequestStatus.FINISHED_ABORTED)

    def has_unfinished_requests(self) -> bool:
        """Whether any request is waiting or running."""
        return self.scheduler.has_unfinished_requests()

    def get_num_unfinished_requests(self) -> int:
        """Waiting plus running requests."""
        return self.scheduler.get_num_unfinished_requests()

    @exclusive
    def step(self) -> list[RequestOutput]:
        """Run one engine step; return the outputs of requests that produced a token.

        All or nothing: if anything fails inside the step (the model runner
        raises or returns an output that does not match the batch, Ctrl-C,
        any fault in scheduling or output processing), the step is undone, so
        queues, counters, blocks, the prefix cache and the batch queue are
        exactly as before it, and :class:`StepFailedError` says what failed.
        ``KeyboardInterrupt`` is raised again as it is; one that lands outside
        the model runner, where a change and its undo note can be apart,
        leaves the engine refusing further calls with ``EngineDeadError``.

        Observers get the step's events once it is done; a failed step's
        events are dropped unseen (see :mod:`minivllm.bus`). An observer must
        not call ``add_request``, ``abort_request`` or ``step`` from its
        handler, nor may another thread while a call runs: such a call raises
        :class:`EngineBusyError` (see :mod:`minivllm.engine.guard`).
        """
        self._announce()
        core = self.engine_core
        bus = self.bus
        step_index, last_step = self.step_index, self.last_step
        savepoint = core.begin_step()
        bus.hold()
        try:
            outputs, result = self._step()
        except BaseException as exc:
            exact = isinstance(exc, Exception) or _raised_in_runner(exc)
            try:
                core.undo_step(savepoint)
            finally:
                bus.discard()
                self.step_index, self.last_step = step_index, last_step
                if not exact:
                    self._guard.dead = (
                        f"step {step_index} was interrupted ({type(exc).__name__}) outside the "
                        f"model runner, where it cannot be undone exactly"
                    )
            if not isinstance(exc, Exception):
                raise
            what = f"step {step_index} failed and was undone (the engine is as it was before it)"
            if isinstance(exc, StepFailedError):
                exc.args = (f"{what}: {exc}",)
                raise
            raise StepFailedError(f"{what}: {type(exc).__name__}: {exc}") from exc
        core.commit_step()
        # Done: StepFinished closes it (an observer failing on it cannot undo it).
        try:
            scheduled = result.scheduled
            if scheduled is None:
                self._finish_step({}, (), result.outputs)
            else:
                self._finish_step(
                    scheduled.num_scheduled_tokens, scheduled.preempted_req_ids, result.outputs
                )
        finally:
            bus.release()
        return outputs

    def _step(self) -> tuple[list[RequestOutput], EngineCoreStep]:
        """The step, all but its ``StepFinished``: what can fail, and be undone."""
        if self._on_step_started.handlers:
            self._on_step_started.emit(*self.scheduler.get_request_counts())
        result = self.engine_core.step_fn()
        self.last_step = result
        return self._make_outputs(result.outputs), result

    def has_work(self) -> bool:
        """Whether a step would do anything: requests, finished ids to hand on, batches in flight.

        vLLM's engine core keeps stepping while this holds, after the last
        request finished (``has_unfinished_requests``) too.
        """
        return self.engine_core.has_work()

    # -- helpers -------------------------------------------------------------

    def _finish_step(
        self, scheduled: dict[str, int], preempted: Iterable[str], updated: Iterable[Request]
    ) -> None:
        self.step_index += 1
        try:
            if self._on_step_finished.handlers:
                sched = self.scheduler
                kv = sched.kv_cache_manager
                self._on_step_finished.emit(
                    MappingProxyType(dict(scheduled)),
                    tuple(sorted(preempted)),
                    tuple(r.request_id for r in updated if r.status > _PREEMPTED),
                    len(sched.running),
                    len(sched.waiting),
                    kv.block_pool.get_num_free_blocks(),
                    kv.get_num_used_blocks(),
                )
        finally:
            self.bus.step = self.step_index

    def _announce(self) -> None:
        # Emitted lazily, so observers subscribed after construction still see it first.
        if self._announced:
            return
        self._announced = True
        c = self.config
        event = self.bus.publish(
            EngineConfigured,
            self.engine_id,
            c.max_num_seqs,
            c.max_num_batched_tokens,
            c.max_model_len,
            c.block_size,
            c.num_gpu_blocks,
            c.enable_chunked_prefill,
            c.enable_prefix_caching,
            c.long_prefill_token_threshold,
            c.policy,
            c.async_scheduling,
            c.scheduler_reserve_full_isl,
            "minivllm",
        )
        if event is not None:  # the clock's first reading a log gets
            _check_reading(event.ts_ns, self.bus.clock)

    def _new_request_id(self, taken: Container[str] = ()) -> str:
        while True:
            request_id = str(self._next_request_id)
            self._next_request_id += 1
            if request_id not in self.scheduler.requests and request_id not in taken:
                return request_id

    def _tokenize(self, prompt: PromptType) -> tuple[str | None, list[int]]:
        if isinstance(prompt, Mapping):
            if _PROMPT_KEYS.isdisjoint(prompt):
                raise ValueError(_prompt_expected(prompt))
            text, prompt = parse_prompt_dict(prompt)
            if not isinstance(prompt, str):
                return text, self._check_token_ids(prompt)
        if isinstance(prompt, str):
            if not prompt:
                raise ValueError("prompt must not be empty, got ''")
            return prompt, self.tokenizer.encode(prompt)
        return None, self._check_token_ids(prompt)

    def _check_token_ids(self, prompt: object) -> list[int]:
        """Token ids as a list of ints: a list, tuple or range of ints, or a numpy int array."""
        if isinstance(prompt, bytes | bytearray | str | Set | Mapping) or not isinstance(
            prompt, Iterable
        ):
            raise ValueError(_prompt_expected(prompt))
        ndim = getattr(prompt, "ndim", None)
        if ndim is not None and ndim != 1:
            raise ValueError(
                f"prompt token ids must be one-dimensional, got an array of {ndim} dimensions"
            )
        token_ids = list(prompt)
        if not token_ids:
            raise ValueError("prompt must not be empty, got []")
        vocab_size = self.tokenizer.vocab_size
        for i, t in enumerate(token_ids):
            if type(t) is not int:
                if not is_integer(t):
                    raise ValueError(
                        f"prompt token id {describe(t)} at position {i} is outside the "
                        f"vocabulary [0, {vocab_size}): token ids are integers"
                    )
                t = token_ids[i] = int(t)  # a numpy integer
            if not 0 <= t < vocab_size:
                raise ValueError(
                    f"prompt token id {t!r} at position {i} is outside the vocabulary "
                    f"[0, {vocab_size})"
                )
        return token_ids

    def _make_outputs(self, updated: list[Request]) -> list[RequestOutput]:
        outputs = []
        for request in updated:
            params = request.sampling_params
            finished = request.status > _PREEMPTED
            if params.output_kind is _FINAL_ONLY and not finished and not params.stop:
                continue  # the common case of LLM.generate, first
            kept_text = None
            if params.stop and not finished:
                kept_text = self._check_stop_strings(request)
                finished = kept_text is not None
            kind = params.output_kind
            if kind is _DELTA:
                token_ids = request._output_token_ids[-1:]
            elif kind is _CUMULATIVE or finished:
                token_ids = request._output_token_ids.copy()
            else:
                continue  # FINAL_ONLY, not finished yet
            completion = CompletionOutput(0, token_ids)
            if finished:
                completion.finish_reason = request.get_finished_reason()
                completion.stop_reason = request.stop_reason
                if kept_text is not None:
                    completion._text = kept_text
            outputs.append(
                RequestOutput(
                    request.request_id,
                    request.prompt,
                    request.prompt_token_ids,
                    [completion],
                    finished,
                    request.num_cached_tokens,
                )
            )
        return outputs

    def _check_stop_strings(self, request: Request) -> str | None:
        """Finish ``request`` if its newest text completes a stop string; return the kept text.

        As vLLM's detokenizer does: only once more than ``min_tokens`` tokens are
        out, and only in the text the newest token added (plus the overlap a stop
        string needs), so an earlier occurrence never matches late.
        """
        outputs = request._output_token_ids
        if len(outputs) <= request.sampling_params.min_tokens:
            return None
        text = self._shown_text(outputs)
        new_char_count = len(text) - len(self._shown_text(outputs[:-1]))
        if new_char_count <= 0:
            return None
        for stop in request.sampling_params.stop:
            index = text.find(stop, max(0, len(text) - new_char_count - len(stop) + 1))
            if index != -1:
                self.scheduler.journal.save_requests((request,))
                request.stop_reason = stop
                self.scheduler.finish_requests(request.request_id, RequestStatus.FINISHED_STOPPED)
                return text[:index]
        return None

    def _shown_text(self, token_ids: list[int]) -> str:
        """The text an incremental detokenizer has shown after ``token_ids``.

        As vLLM's: text ending in an incomplete character (decoded as U+FFFD) is
        held back until a later token completes it, so a stop string ending in a
        multi-byte character matches on the byte that completes it.
        """
        decode = self.tokenizer.decode
        end = len(token_ids)
        text = decode(token_ids)
        while text.endswith("\ufffd") and end > 0:
            end -= 1
            text = decode(token_ids[:end])
        return text

    def __repr__(self) -> str:
        running, waiting = self.scheduler.get_request_counts()
        return f"LLMEngine(step={self.step_index}, running={running}, waiting={waiting})"


# add_request's two overloads are the one statement of its argument orders.
_ADD_REQUEST_ORDERS = add_request_orders(LLMEngine.add_request)
