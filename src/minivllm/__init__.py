"""minivllm: a small, readable inference engine that schedules requests as vLLM's v1 engine does."""

from minivllm.bus import EventBus
from minivllm.bus import Subscription
from minivllm.config import EngineConfig
from minivllm.core.kv_cache_manager import KVCacheManager
from minivllm.core.sched.async_scheduler import AsyncScheduler
from minivllm.core.sched.interface import SchedulerInterface
from minivllm.core.sched.output import SchedulerOutput
from minivllm.core.sched.scheduler import Scheduler
from minivllm.engine.arg_utils import EngineArgs
from minivllm.engine.core import EngineCore
from minivllm.engine.core import StepFailedError
from minivllm.engine.guard import EngineBusyError
from minivllm.engine.guard import EngineDeadError
from minivllm.engine.llm_engine import LLMEngine
from minivllm.entrypoints.llm import LLM
from minivllm.inputs import PromptType
from minivllm.inputs import TextPrompt
from minivllm.inputs import TokensPrompt
from minivllm.model_executor import DummyModelRunner
from minivllm.model_executor import ModelRunner
from minivllm.model_executor import ModelRunnerOutput
from minivllm.outputs import CompletionOutput
from minivllm.outputs import RequestOutput
from minivllm.request import Request
from minivllm.request import RequestStatus
from minivllm.sampling_params import RequestOutputKind
from minivllm.sampling_params import SamplingParams
from minivllm.tokenizer import ByteTokenizer

__all__ = [
    "LLM",
    "AsyncScheduler",
    "ByteTokenizer",
    "CompletionOutput",
    "DummyModelRunner",
    "EngineArgs",
    "EngineBusyError",
    "EngineConfig",
    "EngineCore",
    "EngineDeadError",
    "EventBus",
    "KVCacheManager",
    "LLMEngine",
    "ModelRunner",
    "ModelRunnerOutput",
    "PromptType",
    "Request",
    "RequestOutput",
    "RequestOutputKind",
    "RequestStatus",
    "SamplingParams",
    "Scheduler",
    "SchedulerInterface",
    "SchedulerOutput",
    "StepFailedError",
    "Subscription",
    "TextPrompt",
    "TokensPrompt",
]
__version__ = "0.1.0"
