"""Realistic scheduler and KV cache bugs, each one changed source line, applied in-process.

A :class:`Mutant` names a function, an exact source line in it and its
buggy replacement. ``apply`` recompiles the function from its source with the
line replaced and monkeypatches it in; the source files are never touched.
If the engine's source no longer contains the line, ``apply`` fails loudly
rather than silently testing nothing.
"""

from __future__ import annotations
import __future__

import inspect
import textwrap
from typing import Any

import attrs
import pytest

from minivllm.core.kv_cache_manager import KVCacheManager
from minivllm.core.sched import scheduler as scheduler_module
from minivllm.core.sched import utils as stop_rules
from minivllm.core.sched.scheduler import Scheduler

__all__ = ["MUTANTS", "Mutant"]


@attrs.frozen
class Mutant:
    """One injected bug: in ``owner.function``, ``original`` becomes ``mutated``.

    ``mutated`` may span several lines; each one gets the original line's indentation.
    """

    name: str
    owner: Any
    function: str
    original: str
    mutated: str
    also_patch: tuple[Any, ...] = ()

    def apply(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Install the buggy function (undone when the test ends)."""
        func = inspect.unwrap(getattr(self.owner, self.function))
        source = self.mutate(textwrap.dedent(inspect.getsource(func)))
        code = compile(
            source,
            inspect.getsourcefile(func) or "<mutant>",
            "exec",
            flags=__future__.annotations.compiler_flag,
            dont_inherit=True,
        )
        namespace = dict(func.__globals__)
        exec(code, namespace)
        mutated = namespace[self.function]
        for target in (self.owner, *self.also_patch):
            monkeypatch.setattr(target, self.function, mutated)

    def mutate(self, source: str) -> str:
        """``source`` (the function's, dedented) with ``original`` replaced by ``mutated``."""
        count = source.count(self.original)
        if count != 1:
            raise AssertionError(
                f"mutant {self.name}: expected the line {self.original!r} once in "
                f"{self.function}, found it {count} times; update the mutant"
            )
        at = source.index(self.original)
        indent = source[source.rindex("\n", 0, at) + 1 : at]
        mutated_lines = self.mutated.split("\n")
        replacement = ("\n" + indent).join(mutated_lines)
        return source.replace(self.original, replacement)


MUTANTS = (
    Mutant(
        "no reset of num_computed_tokens on preemption",
        Scheduler,
        "_preempt_request",
        "request.num_computed_tokens = 0",
        "pass",
    ),
    Mutant(
        "admit waiting requests in a step that preempted",
        Scheduler,
        "schedule",
        "if not preempted_reqs:",
        "if True:",
    ),
    Mutant(
        "preempt the first running request instead of the last",
        Scheduler,
        "schedule",
        "preempted_req = running.pop()",
        "preempted_req = running.pop(0)",
    ),
    Mutant(
        "off-by-one token budget",
        Scheduler,
        "schedule",
        "token_budget = self.max_num_scheduled_tokens",
        "token_budget = self.max_num_scheduled_tokens + 1",
    ),
    Mutant(
        "leak a block on abort",
        Scheduler,
        "finish_requests",
        "self._free_request(request)",
        "self.kv_cache_manager.req_to_blocks.get(request.request_id, [None]).pop()\n"
        "self._free_request(request)",
    ),
    Mutant(
        "finish one token past max_tokens",
        stop_rules,
        "check_stop",
        "num_output_tokens >= request.max_tokens",
        "num_output_tokens > request.max_tokens",
        also_patch=(scheduler_module,),
    ),
    Mutant(
        "forget to free blocks on finish",
        Scheduler,
        "update_from_output",
        "self._free_request(request)",
        "self.finished_req_ids.add(request.request_id)\ndel self.requests[request.request_id]",
    ),
    Mutant(
        "prefix-cache hit on the whole prompt",
        KVCacheManager,
        "get_computed_blocks",
        "max_cache_hit_length = request.num_tokens - 1",
        "max_cache_hit_length = request.num_tokens",
    ),
    Mutant(
        "cache-hit blocks in the free queue not counted as allocations",
        KVCacheManager,
        "get_num_blocks_to_allocate",
        "return max(num_new, 0) + num_evictable",
        "return max(num_new, 0)",
    ),
    Mutant(
        "admit beyond max_num_seqs",
        Scheduler,
        "schedule",
        "if len(running) == self.max_num_running_reqs:",
        "if len(running) > self.max_num_running_reqs:",
    ),
)
"""The bugs the property suite must catch, one at a time."""
