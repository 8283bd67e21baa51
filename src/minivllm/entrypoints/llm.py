"""vLLM's offline API: ``LLM(...).generate(prompts, sampling_params)``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from collections.abc import Set
from typing import Any

import attrs
from tqdm import tqdm

from minivllm.bus import observer_streams
from minivllm.engine.llm_engine import LLMEngine
from minivllm.inputs import PromptType
from minivllm.outputs import RequestOutput
from minivllm.sampling_params import RequestOutputKind
from minivllm.sampling_params import SamplingParams
from minivllm.validation import describe
from minivllm.validation import is_integer


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


def _prompt_list(prompts: object) -> list[Any]:
    """The prompts of a ``generate`` call as a list (one prompt is a list of one)."""
    if isinstance(prompts, str | Mapping):
        return [prompts]
    if getattr(prompts, "ndim", None) == 1:  # a numpy array of token ids
        return [prompts]
    if isinstance(prompts, bytes | Set) or not isinstance(prompts, Iterable):
        raise ValueError(
            f"prompts must be a prompt or a list of prompts (strings, lists of token ids or "
            f"prompt dicts), got {describe(prompts)}"
        )
    found = list(prompts)
    if found and all(is_integer(p) for p in found):
        return [found]  # one prompt of token ids
    return found


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
        prompt_list = _prompt_list(prompts)
        n = len(prompt_list)
        if sampling_params is None or isinstance(sampling_params, SamplingParams):
            params_list = [sampling_params or SamplingParams()] * n
        elif isinstance(sampling_params, str | bytes | Mapping) or not isinstance(
            sampling_params, Iterable
        ):
            raise ValueError(
                f"sampling_params must be a SamplingParams or a list of them (one per prompt), "
                f"got {describe(sampling_params)}"
            )
        else:
            params_list = list(sampling_params)
            if len(params_list) != n:
                raise ValueError(f"sampling_params has {len(params_list)} entries for {n} prompts")
            for i, params in enumerate(params_list):
                if not isinstance(params, SamplingParams):
                    raise ValueError(
                        f"sampling_params[{i}] must be a SamplingParams, got {describe(params)}"
                    )
        if priority is None:
            priorities = [0] * n
        elif isinstance(priority, str | bytes | Mapping) or not isinstance(priority, Iterable):
            raise ValueError(
                f"priority must be a list of integers (one per prompt), got {describe(priority)}"
            )
        else:
            priorities = list(priority)
            if len(priorities) != n:
                raise ValueError(f"priority has {len(priorities)} entries for {n} prompts")
        engine = self.llm_engine
        # Every prompt is checked before any is queued: a bad one queues none.
        request_ids = engine._add_requests(
            [
                (prompt, attrs.evolve(params, output_kind=RequestOutputKind.FINAL_ONLY), prio)
                for prompt, params, prio in zip(prompt_list, params_list, priorities, strict=True)
            ]
        )
        order = {request_id: i for i, request_id in enumerate(request_ids)}
        bar = _progress_bar(use_tqdm, len(order), engine)
        results: dict[str, RequestOutput] = {}
        try:
            while len(results) < len(order) and engine.has_unfinished_requests():
                for output in engine.step():
                    if output.finished and output.request_id in order:
                        results[output.request_id] = output
                        if bar is not None:
                            bar.update(1)
        except BaseException:
            # The call failed: its requests must not linger for the next one to run.
            with contextlib.suppress(Exception):
                engine.abort_request([rid for rid in order if rid not in results])
            raise
        finally:
            if bar is not None:
                bar.close()
        return sorted(results.values(), key=lambda o: order[o.request_id])
