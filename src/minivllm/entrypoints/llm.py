"""vLLM's offline API: ``LLM(...).generate(prompts, sampling_params)``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from tqdm import tqdm

from minivllm.bus import observer_streams
from minivllm.engine.llm_engine import LLMEngine
from minivllm.inputs import PromptType
from minivllm.outputs import RequestOutput
from minivllm.sampling_params import RequestOutputKind, SamplingParams


def _progress_bar(
    use_tqdm: bool | Callable[..., tqdm[Any]], total: int, engine: LLMEngine
) -> tqdm[Any] | None:
    """vLLM's "Processed prompts" bar, or None.

    ``use_tqdm`` may be a tqdm-like callable, as in vLLM, which then decides
    everything. The default bar goes to stderr only when stderr is a terminal
    (tqdm's ``disable=None``) that no observer of the engine writes JSON lines
    to, so piping or redirecting stderr never mixes the bar into a log.
    """
    if not use_tqdm:
        return None
    if callable(use_tqdm):
        return use_tqdm(total=total, desc="Processed prompts", dynamic_ncols=True)
    if sys.stderr in observer_streams(engine.bus):
        return None
    return tqdm(
        total=total, desc="Processed prompts", dynamic_ncols=True, disable=None, file=sys.stderr
    )


class LLM:
    """Generate for a batch of prompts; keyword arguments go to :class:`LLMEngine`."""

    def __init__(self, model: Any = "dummy", **engine_kwargs: Any) -> None:
        self.llm_engine = LLMEngine(model, **engine_kwargs)

    def generate(
        self,
        prompts: PromptType | Sequence[PromptType],
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        use_tqdm: bool | Callable[..., tqdm[Any]] = True,
        priority: Sequence[int] | None = None,
    ) -> list[RequestOutput]:
        """Run every prompt to completion; outputs come back in prompt order.

        A prompt is a string, a list of token ids or one of vLLM's prompt dicts.
        A tqdm progress bar counts finished prompts (see :func:`_progress_bar`;
        ``use_tqdm=False`` turns it off, a callable replaces it). ``priority``
        gives each prompt its priority (used by an engine with ``policy="priority"``).
        """
        prompt_list: list[Any]
        if isinstance(prompts, str | Mapping) or (prompts and isinstance(prompts[0], int)):
            prompt_list = [prompts]
        else:
            prompt_list = list(prompts)
        if sampling_params is None or isinstance(sampling_params, SamplingParams):
            params_list = [sampling_params or SamplingParams()] * len(prompt_list)
        else:
            params_list = list(sampling_params)
            if len(params_list) != len(prompt_list):
                raise ValueError(
                    f"sampling_params has {len(params_list)} entries for {len(prompt_list)} prompts"
                )
        if priority is None:
            priorities = [0] * len(prompt_list)
        else:
            priorities = list(priority)
            if len(priorities) != len(prompt_list):
                raise ValueError(
                    f"priority has {len(priorities)} entries for {len(prompt_list)} prompts"
                )
        engine = self.llm_engine
        order: dict[str, int] = {}
        for i, (prompt, params) in enumerate(zip(prompt_list, params_list, strict=True)):
            final = attrs.evolve(params, output_kind=RequestOutputKind.FINAL_ONLY)
            request_id = engine.add_request(prompt, final, priority=priorities[i])
            order[request_id] = i
        bar = _progress_bar(use_tqdm, len(order), engine)
        results: dict[str, RequestOutput] = {}
        try:
            while len(results) < len(order) and engine.has_unfinished_requests():
                for output in engine.step():
                    if output.finished and output.request_id in order:
                        results[output.request_id] = output
                        if bar is not None:
                            bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return sorted(results.values(), key=lambda o: order[o.request_id])
