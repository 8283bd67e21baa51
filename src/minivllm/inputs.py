"""The prompt forms the engine accepts, and the two argument orders of ``add_request``.

A prompt is a string, a sequence of token ids, or one of vLLM's prompt dicts
(``vllm/inputs/llm.py``): ``TextPrompt`` (``{"prompt": "..."}``) or
``TokensPrompt`` (``{"prompt_token_ids": [...]}``, optionally with the
``"prompt"`` text the ids came from).

``LLMEngine.add_request`` takes the lab's order ``(prompt, sampling_params,
request_id, priority, arrival_time)`` and vLLM's ``(request_id, prompt, params,
arrival_time, lora_request, tokenization_kwargs, trace_headers, priority,
prompt_text)``, declared once, as its two overloads (:func:`add_request_orders`
reads them); :func:`parse_add_request` tells them apart by the second
positional argument: a prompt there (a string, a list of token ids, a prompt
dict) means vLLM's order, anything else (a ``SamplingParams``, None) the lab's.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple
from typing import NotRequired
from typing import TypeAlias
from typing import TypedDict
from typing import get_overloads

from minivllm.sampling_params import SamplingParams

__all__ = [
    "AddRequestCall",
    "AddRequestOrders",
    "PromptType",
    "TextPrompt",
    "TokensPrompt",
    "add_request_orders",
    "parse_add_request",
    "parse_prompt_dict",
]


class TextPrompt(TypedDict):
    """vLLM's text prompt: ``{"prompt": "..."}``."""

    prompt: str


class TokensPrompt(TypedDict):
    """vLLM's tokenized prompt: ``{"prompt_token_ids": [...]}``, ``"prompt"`` the text if known."""

    prompt_token_ids: list[int]
    prompt: NotRequired[str]


PromptType: TypeAlias = str | Sequence[int] | TextPrompt | TokensPrompt
"""Every prompt form ``add_request`` accepts."""

# vLLM's prompt dicts carry more keys (multi-modal data, cache salts); naming
# them in the refusal is kinder than ignoring them.
_PROMPT_KEYS = frozenset({"prompt", "prompt_token_ids"})


def parse_prompt_dict(prompt: Mapping[str, Any]) -> tuple[str | None, str | Sequence[int]]:
    """``(text, prompt)`` of a vLLM prompt dict: the text if known, and what to tokenize or use."""
    unknown = sorted(set(prompt) - _PROMPT_KEYS)
    if unknown:
        raise ValueError(
            f"prompt dict has keys minivllm does not support: {unknown}; it takes "
            f"{{'prompt': text}} or {{'prompt_token_ids': [...]}} (optionally with 'prompt')"
        )
    if "prompt_token_ids" in prompt:
        token_ids = prompt["prompt_token_ids"]
        if isinstance(token_ids, str):
            raise TypeError("prompt_token_ids must be a list of token ids, got a string")
        text = prompt.get("prompt")
        if text is not None and not isinstance(text, str):
            raise TypeError(f"prompt must be a string, got {type(text).__name__}")
        return text, token_ids
    if "prompt" in prompt:
        text = prompt["prompt"]
        if not isinstance(text, str):
            raise TypeError(f"prompt must be a string, got {type(text).__name__}")
        return text, text
    raise ValueError("prompt dict needs a 'prompt' or a 'prompt_token_ids' key, got {}")


class AddRequestCall(NamedTuple):
    """The arguments of one ``add_request`` call, whichever order they came in."""

    prompt: PromptType
    params: SamplingParams | None
    request_id: str | None
    priority: int
    arrival_time: float | None


class AddRequestOrders(NamedTuple):
    """The signatures of the two argument orders of ``add_request``, ``self`` left out."""

    lab: inspect.Signature
    vllm: inspect.Signature


def add_request_orders(add_request: Callable[..., Any]) -> AddRequestOrders:
    """The orders of an ``add_request`` declared as two overloads, the lab's then vLLM's."""
    overloads = get_overloads(add_request)
    if len(overloads) != 2:
        raise TypeError(f"add_request must be declared as two overloads, got {len(overloads)}")
    lab, vllm = (inspect.signature(f) for f in overloads)
    return AddRequestOrders(
        *(s.replace(parameters=list(s.parameters.values())[1:]) for s in (lab, vllm))
    )


def _is_prompt(value: object) -> bool:
    if isinstance(value, str):
        return True
    if isinstance(value, Mapping):
        return not _PROMPT_KEYS.isdisjoint(value)
    return isinstance(value, Sequence)


def _is_vllm_order(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    if "params" in kwargs:
        return True
    if len(args) >= 2:
        return _is_prompt(args[1])
    # One positional argument followed by a keyword prompt: it was the request id.
    return len(args) == 1 and "prompt" in kwargs


def parse_add_request(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], orders: AddRequestOrders
) -> AddRequestCall:
    """Bind ``add_request``'s arguments to the lab's or vLLM's order (see the module docstring)."""
    vllm = _is_vllm_order(args, kwargs)
    signature = orders.vllm if vllm else orders.lab
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        order = (
            "vLLM's order (request_id, prompt, params, ...)"
            if vllm
            else ("the lab's order (prompt, sampling_params, ...)")
        )
        raise TypeError(f"add_request in {order}: {exc}") from None
    bound.apply_defaults()
    a = bound.arguments
    if not vllm:
        return AddRequestCall(
            a["prompt"], a["sampling_params"], a["request_id"], a["priority"], a["arrival_time"]
        )
    if not isinstance(a["request_id"], str):
        raise TypeError(f"request_id must be a string, got {type(a['request_id']).__name__}")
    if a["lora_request"] is not None:
        raise ValueError("lora_request is not supported: minivllm has no LoRA adapters")
    if a["tokenization_kwargs"]:
        raise ValueError(
            f"tokenization_kwargs are not supported (the byte tokenizer takes none), "
            f"got {dict(a['tokenization_kwargs'])!r}"
        )
    if a["trace_headers"]:
        raise ValueError(
            "trace_headers are not supported: spans are built from the event log "
            "(see lifecycle_trace.export.otel)"
        )
    prompt = a["prompt"]
    if a["prompt_text"] is not None and not isinstance(prompt, str | Mapping):
        prompt = TokensPrompt(prompt_token_ids=list(prompt), prompt=a["prompt_text"])
    return AddRequestCall(prompt, a["params"], a["request_id"], a["priority"], a["arrival_time"])
