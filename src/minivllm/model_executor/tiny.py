"""The tiny model runner: one batched forward pass per step, then sampling."""

from __future__ import annotations

from itertools import chain
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from numpy.typing import NDArray

from minivllm.config import EngineConfig
from minivllm.core.sched.output import SchedulerOutput
from minivllm.model_executor.runner import ModelRunnerOutput
from minivllm.model_executor.runner import output_index
from minivllm.model_executor.sampler import GeneratorKey
from minivllm.model_executor.sampler import generator_key
from minivllm.model_executor.sampler import make_sampling_metadata
from minivllm.model_executor.sampler import sample
from minivllm.model_executor.tiny_attention import AttentionMetadata
from minivllm.model_executor.tiny_attention import build_attention_metadata
from minivllm.model_executor.tiny_kv_cache import PagedKVCache
from minivllm.model_executor.tiny_model import TinyModel
from minivllm.model_executor.tiny_weights import TinyWeights
from minivllm.model_executor.tiny_weights import init_weights
from minivllm.model_executor.tiny_weights import load_weights
from minivllm.request import Request
from minivllm.tokenizer import ByteTokenizer

IntArray = NDArray[np.int64]


@attrs.frozen(eq=False)
class StepInputs:
    """One step's flat batch: every scheduled token, request after request.

    ``sample_rows`` are the flat rows whose logits are sampled: the last
    scheduled token of each request in ``sampling_requests``.
    """

    requests: list[Request]
    token_ids: IntArray
    positions: IntArray
    attention: AttentionMetadata
    sample_rows: IntArray
    sampling_requests: list[Request]


class TinyModelRunner:
    """Runs :class:`TinyModel` on the scheduler's batches with K/V in a :class:`PagedKVCache`.

    ``seed`` is the engine seed: it keys the generators of requests whose
    ``SamplingParams.seed`` is None. ``dtype`` is the precision of the model
    and of its KV cache.
    """

    def __init__(
        self,
        weights: TinyWeights,
        *,
        num_gpu_blocks: int,
        block_size: int,
        seed: int = 0,
        dtype: type[np.floating[Any]] = np.float32,
    ) -> None:
        vocab_size = ByteTokenizer.vocab_size
        if weights.config.vocab_size != vocab_size:
            raise ValueError(
                f"vocab_size must be {vocab_size} (the byte tokenizer's), "
                f"got {weights.config.vocab_size}"
            )
        self.model = TinyModel(weights, dtype)
        c = weights.config
        self.kv_cache = PagedKVCache(
            c.num_layers, num_gpu_blocks, block_size, c.num_heads, c.head_dim, dtype
        )
        self.block_size = block_size
        self.seed = seed
        self._generator_keys: dict[str, GeneratorKey] = {}
        # Every token this runner sampled for a request, by output index. Under
        # async scheduling a batch's input can end in tokens sampled by the
        # batch before it, which the scheduler has not appended yet (vLLM's
        # GPU runner reads them from its previous sampled token ids).
        self._sampled_token_ids: dict[str, list[int]] = {}

    @classmethod
    def from_name(cls, name: str, *, config: EngineConfig, seed: int = 0) -> TinyModelRunner:
        """``"tiny"`` (random weights from a fixed seed) or a path to an ``.npz`` weights file."""
        if name == "tiny":
            weights = init_weights()
        elif name.endswith(".npz"):
            weights = load_weights(Path(name))
        else:
            raise ValueError(f"model must be 'tiny' or a path to an .npz file, got {name!r}")
        return cls(
            weights, num_gpu_blocks=config.num_gpu_blocks, block_size=config.block_size, seed=seed
        )

    def execute_model(self, scheduler_output: SchedulerOutput) -> ModelRunnerOutput:
        """Compute every scheduled token in one pass; sample for requests whose prefill is done."""
        for request_id in scheduler_output.finished_req_ids:
            self._generator_keys.pop(request_id, None)
            self._sampled_token_ids.pop(request_id, None)
        if not scheduler_output.num_scheduled_tokens:
            return ModelRunnerOutput(req_ids=[], sampled_token_ids=[])
        inputs = self.prepare_inputs(scheduler_output)
        hidden = self.forward(inputs)
        sampled = self.sample(hidden[inputs.sample_rows], inputs.sampling_requests)
        tokens_by_id = {}
        for request, token in zip(inputs.sampling_requests, sampled, strict=True):
            history = self._sampled_token_ids.setdefault(request.request_id, [])
            del history[output_index(request) :]
            history.append(int(token))
            tokens_by_id[request.request_id] = [int(token)]
        req_ids = [r.request_id for r in inputs.requests]
        return ModelRunnerOutput(
            req_ids=req_ids, sampled_token_ids=[tokens_by_id.get(rid, []) for rid in req_ids]
        )

    def prepare_inputs(self, scheduler_output: SchedulerOutput) -> StepInputs:
        """Flatten the scheduled chunks; map each token to its KV slot through its block table."""
        requests = scheduler_output.scheduled_reqs
        block_size = self.block_size
        chunks, tables, lens = [], [], []
        for request in requests:
            request_id = request.request_id
            end = request.num_computed_tokens  # already advanced past this step's chunk
            start = end - scheduler_output.num_scheduled_tokens[request_id]
            chunk = request.all_token_ids[start:end]
            if end > request.num_tokens:
                # Async scheduling: the last inputs were sampled but not appended yet.
                history = self._sampled_token_ids[request_id]
                first = max(start, request.num_tokens) - request.num_prompt_tokens
                chunk = chunk + history[first : end - request.num_prompt_tokens]
            chunks.append(chunk)
            blocks = scheduler_output.req_to_blocks[request_id]
            if len(blocks) * block_size < end:
                raise ValueError(
                    f"request {request_id!r} has {len(blocks)} blocks of {block_size} slots "
                    f"for {end} tokens"
                )
            tables.append([b.block_id for b in blocks])
            lens.append((end - start, end))
        query_lens, seq_lens = np.array(lens, dtype=np.int64).T
        num_tokens = int(query_lens.sum())
        token_ids = np.fromiter(chain.from_iterable(chunks), dtype=np.int64, count=num_tokens)
        # Padding points at the null block; attention masks it out.
        width = max(map(len, tables))
        block_tables = np.array([t + [0] * (width - len(t)) for t in tables], dtype=np.int64)

        row_request = np.repeat(np.arange(len(requests)), query_lens)
        query_start = np.cumsum(query_lens) - query_lens
        positions = (seq_lens - query_lens)[row_request] + (
            np.arange(num_tokens) - query_start[row_request]
        )
        slot_mapping = (
            block_tables[row_request, positions // block_size] * block_size + positions % block_size
        )
        # Every request but a non-final prefill chunk samples.
        samples = np.array([not r.is_prefill_chunk for r in requests], dtype=bool)
        return StepInputs(
            requests=requests,
            token_ids=token_ids,
            positions=positions,
            attention=build_attention_metadata(
                query_lens, seq_lens, block_tables, slot_mapping, block_size
            ),
            sample_rows=(query_start + query_lens - 1)[samples],
            sampling_requests=[r for r, s in zip(requests, samples, strict=True) if s],
        )

    def forward(self, inputs: StepInputs) -> NDArray[np.floating[Any]]:
        """Hidden states of every token in the step (writes this step's K/V to the cache)."""
        return self.model.forward_paged(
            inputs.token_ids, inputs.positions, self.kv_cache, inputs.attention
        )

    def sample(self, hidden_states: NDArray[np.floating[Any]], requests: list[Request]) -> IntArray:
        """One token per request from the hidden state of its last computed token."""
        if not requests:
            return np.empty(0, dtype=np.int64)
        keys = []
        for request in requests:
            key = self._generator_keys.get(request.request_id)
            if key is None:
                key = self._generator_keys[request.request_id] = generator_key(request, self.seed)
            keys.append(key)
        logits = self.model.compute_logits(hidden_states)
        positions = [output_index(r) for r in requests]
        metadata = make_sampling_metadata(requests, positions, keys, self.model.config.vocab_size)
        return sample(logits, metadata)
