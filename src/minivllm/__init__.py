"""minivllm: a small, readable inference engine that schedules requests as vLLM's v1 engine does."""

from minivllm.bus import EventBus, Subscription
from minivllm.config import EngineConfig
from minivllm.core.kv_cache_manager import KVCacheManager
from minivllm.core.sched.async_scheduler import AsyncScheduler
from minivllm.core.sched.interface import SchedulerInterface
from minivllm.core.sched.output import SchedulerOutput
from minivllm.core.sched.scheduler import Scheduler
from minivllm.engine.arg_utils import EngineArgs
from minivllm.engine.core import EngineCore, StepFailedError
from minivllm.engine.guard import EngineBusyError, EngineDeadError
from minivllm.engine.llm_engine import LLMEngine
from minivllm.entrypoints.llm import LLM
from minivllm.inputs import PromptType, TextPrompt, TokensPrompt
from minivllm.model_executor import DummyModelRunner, ModelRunner, ModelRunnerOutput
from minivllm.outputs import CompletionOutput, RequestOutput
from minivllm.request import Request, RequestStatus
from minivllm.sampling_params import RequestOutputKind, SamplingParams
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
