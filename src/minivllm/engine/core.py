"""The engine core: schedule, run the model, apply its output (vLLM's ``EngineCore``).

Synchronous scheduling steps with :meth:`EngineCore.step`: schedule a batch,
run the model on it, update the scheduler from its output. Async scheduling
steps with :meth:`EngineCore.step_with_batch_queue` and a batch queue of two
(vLLM's uniproc executor has ``max_concurrent_batches == 2`` under async
scheduling): the batch scheduled in one step is processed in the next.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import attrs

from minivllm.bus import EventBus
from minivllm.config import EngineConfig
from minivllm.core.sched.async_scheduler import AsyncScheduler
from minivllm.core.sched.output import SchedulerOutput
from minivllm.core.sched.scheduler import Scheduler
from minivllm.model_executor.runner import ModelRunner
from minivllm.model_executor.runner import ModelRunnerOutput
from minivllm.request import Request


@attrs.frozen
class EngineCoreStep:
    """What one engine-core step did.

    ``scheduled`` is the batch this step scheduled (None when the scheduler
    had nothing, not even finished ids to hand on); ``processed`` is the batch
    whose model output this step consumed (None when none was), and
    ``outputs`` the requests that received a token or finished then. Under
    synchronous scheduling both batches are the same one.
    """

    scheduled: SchedulerOutput | None
    processed: SchedulerOutput | None
    outputs: list[Request]


NOTHING_DONE = EngineCoreStep(None, None, [])


class StepFailedError(RuntimeError):
    """A step failed and was undone: the engine is exactly as it was before the step.

    The message says what failed; ``__cause__`` holds the original exception
    when there was one.
    """


class ModelRunnerError(StepFailedError):
    """The model runner raised while it ran a batch."""


class ModelRunnerOutputError(StepFailedError, ValueError):
    """A model runner output that does not match the batch it was given; nothing was applied."""

    def __init__(self, message: str, scheduler_output: SchedulerOutput) -> None:
        super().__init__(message)
        self.scheduler_output = scheduler_output


StepSavepoint = tuple[list[Request], set[str], tuple[str, ...], list[Any] | None]
"""What a step may change outside the journal: ``running``, ``finished_req_ids`` (the set
and its contents) and the batch queue."""


class EngineCore:
    """Owns the scheduler, the model runner and, under async scheduling, the batch queue."""

    def __init__(
        self, config: EngineConfig, model_runner: ModelRunner, bus: EventBus, vocab_size: int
    ) -> None:
        self.config = config
        scheduler_cls = AsyncScheduler if config.async_scheduling else Scheduler
        self.scheduler: Scheduler = scheduler_cls(config, bus)
        self.model_runner = model_runner
        self.vocab_size = vocab_size

        # The uniproc executor runs two batches at once under async scheduling.
        self.batch_queue_size = 2 if config.async_scheduling else 1
        self.batch_queue: deque[tuple[ModelRunnerOutput, SchedulerOutput]] | None = None
        if self.batch_queue_size > 1:
            self.batch_queue = deque(maxlen=self.batch_queue_size)
        self.step_fn: Callable[[], EngineCoreStep] = (
            self.step if self.batch_queue is None else self.step_with_batch_queue
        )

    def step(self) -> EngineCoreStep:
        """Schedule, execute, and make output."""
        # Check for any requests remaining in the scheduler - unfinished,
        # or finished and not yet removed from the batch.
        if not self.scheduler.has_requests():
            return NOTHING_DONE
        scheduler_output = self.scheduler.schedule()
        model_output = self.execute_model(scheduler_output)
        outputs = self.scheduler.update_from_output(scheduler_output, model_output)
        return EngineCoreStep(scheduler_output, scheduler_output, outputs)

    def step_with_batch_queue(self) -> EngineCoreStep:
        """Schedule and execute batches with the batch queue.

        The execution flow is as follows:
        1. Try to schedule a new batch if the batch queue is not full.
        If a new batch is scheduled, directly return an empty engine core
        output. In other words, fulfilling the batch queue has a higher priority
        than getting model outputs.
        2. If there is no new scheduled batch, meaning that the batch queue
        is full or no other requests can be scheduled, we block until the first
        batch in the job queue is finished.
        3. Update the scheduler from the output.

        minivllm runs the regime in which the model is still busy with the
        oldest batch whenever a new one has been scheduled (vLLM's
        ``not batch_queue[-1][0].done()`` always holds), so every run
        interleaves the same way.
        """
        batch_queue = self.batch_queue
        assert batch_queue is not None

        # Try to schedule a new batch if the batch queue is not full, but
        # the scheduler may return an empty batch if all requests are scheduled.
        # Note that this is not blocking.
        assert len(batch_queue) < self.batch_queue_size

        scheduled = None
        if self.scheduler.has_requests():
            scheduler_output = self.scheduler.schedule()
            model_output = self.execute_model(scheduler_output)
            model_executed = scheduler_output.total_num_scheduled_tokens > 0

            # Add this step's batch to the queue.
            batch_queue.appendleft((model_output, scheduler_output))
            if model_executed and len(batch_queue) < self.batch_queue_size:
                # Don't block on next worker response unless the queue is full
                # or there are no more requests to schedule.
                return EngineCoreStep(scheduler_output, None, [])
            scheduled = scheduler_output

        elif not batch_queue:
            # Queue is empty. We should not reach here since this method should
            # only be called when the scheduler contains requests or the queue
            # is non-empty.
            return NOTHING_DONE

        # Block until the next result is available.
        model_output, scheduler_output = batch_queue.pop()
        outputs = self.scheduler.update_from_output(scheduler_output, model_output)
        return EngineCoreStep(scheduled, scheduler_output, outputs)

    def execute_model(self, scheduler_output: SchedulerOutput) -> ModelRunnerOutput:
        """Run the model on a batch right after it was scheduled, and check what it returns.

        A runner that raises, or returns an output that does not match the
        batch, fails the step before anything applies the output
        (:class:`ModelRunnerError`, :class:`ModelRunnerOutputError`); the
        engine then undoes the whole step.
        """
        try:
            model_output = self.model_runner.execute_model(scheduler_output)
        except Exception as exc:
            raise ModelRunnerError(f"the model runner raised {type(exc).__name__}: {exc}") from exc
        try:
            validate_runner_output(
                scheduler_output, model_output, self.scheduler.requests, self.vocab_size
            )
        except ValueError as exc:
            raise ModelRunnerOutputError(str(exc), scheduler_output) from None
        return model_output

    # -- all or nothing: a failed step is undone ----------------------------

    def begin_step(self) -> StepSavepoint:
        """Start noting what the step changes, so :meth:`undo_step` can take it all back."""
        scheduler = self.scheduler
        scheduler.journal.begin()
        finished = scheduler.finished_req_ids
        batch_queue = self.batch_queue
        return (
            scheduler.running.copy(),
            finished,
            tuple(finished),
            None if batch_queue is None else list(batch_queue),
        )

    def commit_step(self) -> None:
        """The step succeeded: forget its notes."""
        self.scheduler.journal.commit()

    def undo_step(self, savepoint: StepSavepoint) -> None:
        """Take back everything the step changed."""
        scheduler = self.scheduler
        scheduler.journal.undo()
        running, finished, finished_ids, batch_queue = savepoint
        scheduler.running = running
        finished.clear()
        finished.update(finished_ids)
        scheduler.finished_req_ids = finished
        if self.batch_queue is not None and batch_queue is not None:
            self.batch_queue.clear()
            self.batch_queue.extend(batch_queue)

    def has_work(self) -> bool:
        """Returns true if the engine should be stepped."""
        return self.scheduler.has_requests() or bool(self.batch_queue)


def validate_runner_output(
    scheduler_output: SchedulerOutput,
    model_runner_output: ModelRunnerOutput,
    requests: Mapping[str, Request],
    vocab_size: int,
) -> None:
    """Refuse a runner output that does not match the batch it was given, before it is applied.

    Checked right after the batch was scheduled, when ``is_prefill_chunk``
    says which requests sample: those get exactly one token id of the
    vocabulary, the others ``[]``.
    """
    if not isinstance(model_runner_output, ModelRunnerOutput):
        raise ValueError(
            f"model runner output: execute_model must return a ModelRunnerOutput, got "
            f"{_describe(model_runner_output)}"
        )
    req_ids = model_runner_output.req_ids
    sampled = model_runner_output.sampled_token_ids
    scheduled = scheduler_output.num_scheduled_tokens
    if not isinstance(req_ids, list) or not isinstance(sampled, list):
        raise ValueError(
            f"model runner output: req_ids and sampled_token_ids must be lists, got "
            f"{_describe(req_ids)} and {_describe(sampled)}"
        )
    if len(req_ids) != len(sampled):
        raise ValueError(
            f"model runner output: req_ids has {len(req_ids)} entries but "
            f"sampled_token_ids has {len(sampled)}"
        )
    batch = scheduler_output.scheduled_reqs
    if req_ids != [r.request_id for r in batch]:  # the engine's own runners keep this order
        if (
            len(req_ids) != len(scheduled)
            or not all(type(req_id) is str for req_id in req_ids)
            or set(req_ids) != scheduled.keys()
        ):
            raise ValueError(
                f"model runner output: req_ids {_describe(req_ids)} do not match the "
                f"scheduled requests {sorted(scheduled)!r}"
            )
        batch = [requests[req_id] for req_id in req_ids]
    for request, token_ids in zip(batch, sampled, strict=True):
        if request.is_prefill_chunk:
            if token_ids != []:
                raise ValueError(
                    f"model runner output: request {request.request_id!r} is mid-prefill and "
                    f"must get [], got {token_ids!r}"
                )
        elif (
            type(token_ids) is not list
            or len(token_ids) != 1
            or type(token_ids[0]) is not int
            or not 0 <= token_ids[0] < vocab_size
        ):
            raise ValueError(
                f"model runner output: request {request.request_id!r} must get exactly one "
                f"token id in the vocabulary [0, {vocab_size}), as a list of one int, got "
                f"{_describe(token_ids)}"
            )


def _describe(value: object) -> str:
    """A value for an error message: its type, and its repr when short."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
