"""A request's live state and the status enum whose order carries logic (vLLM's ``request.py``)."""

from __future__ import annotations

import enum

from minivllm.sampling_params import SamplingParams


class RequestStatus(enum.IntEnum):
    """Status of a request, in vLLM 0.22.1's order: every status above PREEMPTED is finished.

    minivllm's scheduler uses WAITING, RUNNING, PREEMPTED and the FINISHED_*
    statuses; the three blocked WAITING_FOR_* statuses (structured-output
    grammar, remote KV transfer, streaming input) and FINISHED_ERROR /
    FINISHED_REPETITION exist so that the order, and so ``is_finished``, is vLLM's.
    """

    WAITING = enum.auto()
    WAITING_FOR_STRUCTURED_OUTPUT_GRAMMAR = enum.auto()
    WAITING_FOR_REMOTE_KVS = enum.auto()
    WAITING_FOR_STREAMING_REQ = enum.auto()
    RUNNING = enum.auto()
    PREEMPTED = enum.auto()
    # Note: anything after PREEMPTED will be considered
    # as a finished status.
    FINISHED_STOPPED = enum.auto()
    FINISHED_LENGTH_CAPPED = enum.auto()
    FINISHED_ABORTED = enum.auto()
    FINISHED_IGNORED = enum.auto()
    FINISHED_ERROR = enum.auto()
    FINISHED_REPETITION = enum.auto()

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def is_finished(status: RequestStatus) -> bool:
        """Whether ``status`` is one of the FINISHED_* statuses."""
        return status > RequestStatus.PREEMPTED

    @staticmethod
    def get_finished_reason(status: RequestStatus) -> str | None:
        """vLLM's finish reason string (``"stop"``, ``"length"``, ``"abort"``, ...) or None."""
        return _FINISHED_REASON_MAP.get(status)


# Mapping of finished statuses to their finish reasons.
# NOTE: The ignored requests are the requests whose prompt lengths
# are longer than the model's length cap. Therefore, the stop
# reason should also be "length" as in OpenAI API.
_FINISHED_REASON_MAP = {
    RequestStatus.FINISHED_STOPPED: "stop",
    RequestStatus.FINISHED_LENGTH_CAPPED: "length",
    RequestStatus.FINISHED_ABORTED: "abort",
    RequestStatus.FINISHED_IGNORED: "length",
    RequestStatus.FINISHED_ERROR: "error",
    RequestStatus.WAITING_FOR_STREAMING_REQ: "stop",
    RequestStatus.FINISHED_REPETITION: "repetition",
}


# Looking an enum member up on its class costs about 150 ns in Python 3.11.
_PREEMPTED = RequestStatus.PREEMPTED


class Request:
    """One request's mutable state inside the engine.

    The scheduler owns every change to it; the counters mean what they mean in
    vLLM: ``num_computed_tokens`` advances at schedule time, ``num_tokens`` when
    a sampled token is appended. Under synchronous scheduling a decoding
    request sits at ``num_computed_tokens == num_tokens - 1`` between steps;
    under async scheduling each scheduled-but-unprocessed sampled token is an
    output placeholder, so it sits at
    ``num_computed_tokens == num_tokens + num_output_placeholders - 1``.
    """

    __slots__ = (
        "_all_token_ids",
        "_output_token_ids",
        "arrival_time",
        "block_hashes",
        "eos_token_id",
        "is_prefill_chunk",
        "max_tokens",
        "num_cached_tokens",
        "num_computed_tokens",
        "num_output_placeholders",
        "num_preemptions",
        "num_prompt_tokens",
        "num_tokens",
        "priority",
        "prompt",
        "prompt_token_ids",
        "request_id",
        "sampling_params",
        "status",
        "stop_reason",
    )

    def __init__(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        sampling_params: SamplingParams,
        max_tokens: int,
        eos_token_id: int | None,
        arrival_time: float,
        prompt: str | None = None,
        priority: int = 0,
    ) -> None:
        self.request_id = request_id
        self.priority = priority
        self.prompt = prompt
        self.prompt_token_ids = prompt_token_ids
        self.num_prompt_tokens = len(prompt_token_ids)
        self.sampling_params = sampling_params
        self.max_tokens = max_tokens
        self.eos_token_id = eos_token_id
        self.arrival_time = arrival_time
        self.status = RequestStatus.WAITING
        self.stop_reason: int | str | None = None
        self._output_token_ids: list[int] = []
        self._all_token_ids: list[int] = list(prompt_token_ids)
        # Prompt plus output tokens, kept up to date on append (nano-vllm's
        # Sequence does the same): the scheduler reads it for every request
        # in every step.
        self.num_tokens = self.num_prompt_tokens

        # Used in async scheduling.
        self.num_output_placeholders = 0

        self.num_computed_tokens = 0
        self.num_cached_tokens = 0

        # True if this request is scheduled as a non-final prefill chunk.
        self.is_prefill_chunk = False

        # The number of times this request has been preempted by the scheduler.
        self.num_preemptions = 0

        # Hashes of the full blocks of `_all_token_ids`, filled lazily by the
        # KV cache manager when prefix caching is on.
        self.block_hashes: list[int] = []

    @property
    def num_output_tokens(self) -> int:
        """Output tokens sampled and appended so far."""
        return len(self._output_token_ids)

    @property
    def output_token_ids(self) -> list[int]:
        """The sampled tokens (a live list; do not mutate)."""
        return self._output_token_ids

    @property
    def all_token_ids(self) -> list[int]:
        """Prompt and output tokens (a live list; do not mutate)."""
        return self._all_token_ids

    def append_output_token_ids(self, token_id: int) -> None:
        """Append one sampled token."""
        self._output_token_ids.append(token_id)
        self._all_token_ids.append(token_id)
        self.num_tokens += 1

    def is_finished(self) -> bool:
        """Whether the request reached a FINISHED_* status."""
        return self.status > _PREEMPTED

    def get_finished_reason(self) -> str | None:
        """vLLM's finish reason for the current status, or None while unfinished."""
        return _FINISHED_REASON_MAP.get(self.status)

    def __lt__(self, other: Request) -> bool:
        """
        Compare two requests based on priority, arrival time, and request ID.
        Used in priority scheduling.
        """
        if self.priority != other.priority:
            return self.priority < other.priority
        if self.arrival_time != other.arrival_time:
            return self.arrival_time < other.arrival_time
        if self.request_id != other.request_id:
            return self.request_id < other.request_id
        return id(self) < id(other)

    def __repr__(self) -> str:
        return (
            f"Request({self.request_id!r}, {self.status.name}, "
            f"num_computed_tokens={self.num_computed_tokens}, num_tokens={self.num_tokens})"
        )
