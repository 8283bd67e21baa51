"""Sampling as vLLM's sampler does it: greedy at temperature 0, else temperature, top-k, top-p.

Every request draws from its own generator: the draw for output position
``k`` is the ``k``-th value of a counter-based generator (Philox) keyed by the
request's seed, so a token never depends on which other requests share the
batch, on how the prompt was chunked, or on preemption.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from numpy.typing import NDArray

from minivllm.request import Request

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]
GeneratorKey = NDArray[np.uint64]

SAMPLING_EPS = 1e-5
"""Temperatures below this are greedy (vLLM's ``_SAMPLING_EPS``)."""

_UINT64 = 1 << 64


def generator_key(request: Request, engine_seed: int) -> GeneratorKey:
    """The Philox key of a request's generator.

    From ``SamplingParams.seed`` when set; otherwise from the engine seed and
    the request id, which keeps unseeded runs reproducible yet lets two
    requests with the same prompt draw differently.
    """
    seed = request.sampling_params.seed
    if seed is not None:
        entropy = [seed % _UINT64]
    else:
        request_tag = zlib.crc32(request.request_id.encode("utf-8"))
        entropy = [engine_seed % _UINT64, request_tag, 1]
    return np.random.SeedSequence(entropy).generate_state(2, np.uint64).astype(np.uint64)


def draw_uniform(key: GeneratorKey, position: int) -> float:
    """The request's draw in ``[0, 1)`` for output position ``position``."""
    return float(np.random.Generator(np.random.Philox(key=key, counter=position)).random())


@attrs.frozen(eq=False)
class SamplingMetadata:
    """Per-row sampling settings of one step's sampling requests.

    ``top_k`` holds the vocabulary size where top-k is off; ``uniforms`` is
    each row's draw (ignored by greedy rows); ``banned_rows``/``banned_tokens``
    are the (row, token) pairs masked out because ``min_tokens`` is not reached.
    """

    temperature: Array
    top_k: IntArray
    top_p: Array
    uniforms: Array
    banned_rows: IntArray
    banned_tokens: IntArray


def make_sampling_metadata(
    requests: Sequence[Request],
    positions: Sequence[int],
    keys: Sequence[GeneratorKey],
    vocab_size: int,
) -> SamplingMetadata:
    """Collect the sampling settings of ``requests`` (one row each), with their generator keys.

    ``positions`` are the output indices being sampled (under async
    scheduling a request's ``num_output_tokens`` lags behind them).
    """
    temperature, top_k, top_p, uniforms = [], [], [], []
    banned_rows: list[int] = []
    banned_tokens: list[int] = []
    for row, (request, position, key) in enumerate(zip(requests, positions, keys, strict=True)):
        params = request.sampling_params
        temperature.append(params.temperature)
        top_k.append(params.top_k if 0 < params.top_k < vocab_size else vocab_size)
        top_p.append(params.top_p)
        greedy = params.temperature < SAMPLING_EPS
        uniforms.append(0.0 if greedy else draw_uniform(key, position))
        if position < params.min_tokens:
            stops = set(params.stop_token_ids)
            if request.eos_token_id is not None:
                stops.add(request.eos_token_id)
            for token in sorted(t for t in stops if t < vocab_size):
                banned_rows.append(row)
                banned_tokens.append(token)
    return SamplingMetadata(
        temperature=np.array(temperature, dtype=np.float64),
        top_k=np.array(top_k, dtype=np.int64),
        top_p=np.array(top_p, dtype=np.float64),
        uniforms=np.array(uniforms, dtype=np.float64),
        banned_rows=np.array(banned_rows, dtype=np.int64),
        banned_tokens=np.array(banned_tokens, dtype=np.int64),
    )


def sample(logits: NDArray[np.floating[Any]], metadata: SamplingMetadata) -> IntArray:
    """One token per row of ``logits`` (``[rows, vocab_size]``)."""
    logits = logits.astype(np.float64)  # a copy, so masking leaves the caller's array alone
    logits[metadata.banned_rows, metadata.banned_tokens] = -np.inf
    tokens: IntArray = np.argmax(logits, axis=1)
    random_rows = np.flatnonzero(metadata.temperature >= SAMPLING_EPS)
    if random_rows.size:
        tokens[random_rows] = _sample_random(
            logits[random_rows] / metadata.temperature[random_rows, None],
            metadata.top_k[random_rows],
            metadata.top_p[random_rows],
            metadata.uniforms[random_rows],
        )
    return tokens


def _sample_random(logits: Array, top_k: IntArray, top_p: Array, uniforms: Array) -> IntArray:
    # Sort each row once: top-k, top-p and the inverse-CDF draw all work on
    # the tokens in descending order of probability.
    order = np.argsort(-logits, axis=1, kind="stable")
    ranked = np.take_along_axis(logits, order, axis=1)
    ranks = np.arange(logits.shape[1])
    ranked = np.where(ranks[None, :] < top_k[:, None], ranked, -np.inf)
    probs = np.exp(ranked - ranked[:, :1])
    probs /= probs.sum(axis=1, keepdims=True)
    # Top-p keeps the smallest prefix whose mass reaches top_p; the first token always stays.
    mass_before = np.cumsum(probs, axis=1) - probs
    probs = np.where(mass_before < top_p[:, None], probs, 0.0)
    cdf = np.cumsum(probs, axis=1)
    choice = (cdf < uniforms[:, None] * cdf[:, -1:]).sum(axis=1)
    chosen: IntArray = order[np.arange(order.shape[0]), choice]
    return chosen
