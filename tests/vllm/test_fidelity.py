"""A seeded sample of the fidelity cross-check: random workloads, minivllm against vLLM.

The whole check runs as a script (``python tests/vllm/fidelity.py --count 400``);
this sample keeps a fixed slice of it in the test suite.
"""

from __future__ import annotations

import pytest

from helpers.vllm import skip_without_vllm

skip_without_vllm()

from fidelity import MODES  # noqa: E402
from fidelity import cases  # noqa: E402
from fidelity import make_case  # noqa: E402
from fidelity import run_case  # noqa: E402

SAMPLE = 24
"""Cases per mode in the sample (each takes a few tens of milliseconds per engine)."""


@pytest.mark.parametrize("mode", MODES)
def test_random_workloads_have_the_same_lifecycle_on_both_engines_and_pass_check(mode: str) -> None:
    for case in cases(SAMPLE, seed=1000, modes=[mode]):
        outcome = run_case(case)
        assert outcome.ok, f"{case.describe()}\n{outcome.report()}"


def test_the_generator_is_seeded_and_covers_the_hard_cases() -> None:
    assert make_case(7, "sync-fcfs") == make_case(7, "sync-fcfs")
    sample = list(cases(200, seed=1000, modes=MODES))
    requests = [r for c in sample for r in c.scenario.requests]
    configs = [c.scenario.config for c in sample]
    assert any(c.enable_prefix_caching for c in configs)
    assert any(not c.enable_chunked_prefill for c in configs)
    assert any(c.long_prefill_token_threshold for c in configs)
    assert any(r.abort is not None for r in requests)
    assert any(r.arrival > 0 for r in requests)
    assert any(r.sampling_params.min_tokens for r in requests)
    assert any(r.sampling_params.stop_token_ids for r in requests)
    assert any(c.scenario.sampler.script for c in sample)
    assert {c.mode for c in sample} == set(MODES)
    assert any(r.priority for r in requests)
    assert all(c.scenario.config.async_scheduling == c.mode.startswith("async") for c in sample)
