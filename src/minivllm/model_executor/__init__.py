"""Model runners: they turn a scheduled batch into one sampled token per finished prefill."""

from minivllm.model_executor.dummy import DummyModelRunner
from minivllm.model_executor.runner import ModelRunner
from minivllm.model_executor.runner import ModelRunnerOutput
from minivllm.model_executor.runner import output_index

__all__ = ["DummyModelRunner", "ModelRunner", "ModelRunnerOutput", "output_index"]
