"""vLLM's offline API: ``LLM(...).generate(prompts, sampling_params)``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

import attrs

from minivllm.engine.llm_engine import LLMEngine
from minivllm.outputs import RequestOutput
from minivllm.sampling_params import RequestOutputKind, SamplingParams


class _ProgressBar:
    """A one-line progress bar on a stream (no dependency, no network)."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.done = 0
        self.stream = stream

    def update(self, n: int) -> None:
        self.done += n
        width = 30
        filled = width * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\rProcessed prompts: [{bar}] {self.done}/{self.total}")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


class LLM:
    """Generate for a batch of prompts; keyword arguments go to :class:`LLMEngine`."""

    def __init__(self, model: Any = "dummy", **engine_kwargs: Any) -> None:
        self.llm_engine = LLMEngine(model, **engine_kwargs)

    def generate(
        self,
        prompts: str | Sequence[str] | Sequence[Sequence[int]],
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        use_tqdm: bool = True,
        priority: Sequence[int] | None = None,
    ) -> list[RequestOutput]:
        """Run every prompt to completion; outputs come back in prompt order.

        A progress bar is drawn on stderr for batches of 8 or more prompts
        unless ``use_tqdm=False``. ``priority`` gives each prompt its priority
        (used by an engine with ``policy="priority"``).
        """
        if isinstance(prompts, str) or (prompts and isinstance(prompts[0], int)):
            prompts = [prompts]  # type: ignore[assignment]
        if sampling_params is None or isinstance(sampling_params, SamplingParams):
            params_list = [sampling_params or SamplingParams()] * len(prompts)
        else:
            params_list = list(sampling_params)
            if len(params_list) != len(prompts):
                raise ValueError(
                    f"sampling_params has {len(params_list)} entries for {len(prompts)} prompts"
                )
        if priority is None:
            priorities = [0] * len(prompts)
        else:
            priorities = list(priority)
            if len(priorities) != len(prompts):
                raise ValueError(
                    f"priority has {len(priorities)} entries for {len(prompts)} prompts"
                )
        engine = self.llm_engine
        order: dict[str, int] = {}
        for i, (prompt, params) in enumerate(zip(prompts, params_list, strict=True)):
            final = attrs.evolve(params, output_kind=RequestOutputKind.FINAL_ONLY)
            request_id = engine.add_request(prompt, final, priority=priorities[i])  # type: ignore[arg-type]
            order[request_id] = i
        bar = _ProgressBar(len(order), sys.stderr) if use_tqdm and len(order) >= 8 else None
        results: dict[str, RequestOutput] = {}
        while len(results) < len(order) and engine.has_unfinished_requests():
            for output in engine.step():
                if output.finished and output.request_id in order:
                    results[output.request_id] = output
                    if bar is not None:
                        bar.update(1)
        return sorted(results.values(), key=lambda o: order[o.request_id])
