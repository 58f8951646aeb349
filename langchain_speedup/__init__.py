"""langchain-speedup: test-time scaling for LangGraph that gets cheaper with experience.

Adaptive scaling methods stop once an answer scores above a threshold; a
memory-aware budget router gives a question less compute the more it resembles
past, verified experience, stored in any LangGraph store with a vector index.

Names load on first use, so `import langchain_speedup` stays light.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_speedup.answers import (
        answers_equal,
        extract_answer,
        question_key,
        reuse_key,
        same_problem,
    )
    from langchain_speedup.budget import Ledger
    from langchain_speedup.chat_model import SpeedupChatModel
    from langchain_speedup.errors import (
        ConfigurationError,
        EmbeddingError,
        EmbeddingSizeError,
        InvalidInputError,
        LocalStackError,
        MemoryStoreError,
        ModelError,
        SandboxError,
        ScoringError,
        SpeedupError,
    )
    from langchain_speedup.memory import (
        EpisodicMemory,
        InContextMemory,
        MemoryMechanism,
        MultiCaseReflectMemory,
        ProcedureMemory,
        QdrantStore,
        ReflectionQueue,
        ReflectionResult,
        ReflectMemory,
        ReflectUpdateMemory,
        SimilarityGate,
        areflect,
        areflect_update,
        create_reflection_update_node,
        default_store,
        export_sft_dataset,
        memory_index,
        migrate_store,
        reflect,
        reflect_update,
    )
    from langchain_speedup.middleware import SpeedupMiddleware
    from langchain_speedup.programs import (
        PROGRAM_PROMPT,
        ProgramAnswer,
        aprogram_of_thought,
        extract_program,
        program_of_thought,
        program_solution,
    )
    from langchain_speedup.router import (
        BudgetRouter,
        SpeedupContext,
        create_speedup_graph,
    )
    from langchain_speedup.sandbox import ProgramResult, Sandbox
    from langchain_speedup.scaling import (
        BestOfN,
        LongCoT,
        RunContext,
        ScalingEngine,
        SelfRefine,
        TreeOfThoughts,
        create_best_of_n_graph,
        create_engine,
        create_long_cot_graph,
        create_self_refine_graph,
        create_tree_of_thoughts_graph,
    )
    from langchain_speedup.scoring import (
        ConsensusScorer,
        FunctionScorer,
        LLMJudgeScorer,
        ProgramVerifiedScorer,
        Scorer,
    )
    from langchain_speedup.types import (
        METHODS,
        Candidate,
        Decision,
        Episode,
        EpisodeMatch,
        Exemplar,
        MemoryContext,
        Method,
        Mode,
        Procedure,
        ProcedureTrial,
        Quantity,
        Route,
        ScalingEvent,
        ScalingResult,
        SpeedupResult,
        Usage,
    )

try:
    __version__ = version("langchain-speedup")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

# Where `__getattr__` looks for a name, in order: the lightest modules first.
_SUBMODULES = (
    "types",
    "errors",
    "answers",
    "budget",
    "sandbox",
    "programs",
    "scoring",
    "scaling",
    "memory",
    "router",
    "chat_model",
    "middleware",  # needs langchain: last, so no other name imports it
)

__all__ = [
    "METHODS",
    "PROGRAM_PROMPT",
    "BestOfN",
    "BudgetRouter",
    "Candidate",
    "ConfigurationError",
    "ConsensusScorer",
    "Decision",
    "EmbeddingError",
    "EmbeddingSizeError",
    "Episode",
    "EpisodeMatch",
    "EpisodicMemory",
    "Exemplar",
    "FunctionScorer",
    "InContextMemory",
    "InvalidInputError",
    "LLMJudgeScorer",
    "Ledger",
    "LocalStackError",
    "LongCoT",
    "MemoryContext",
    "MemoryMechanism",
    "MemoryStoreError",
    "Method",
    "Mode",
    "ModelError",
    "MultiCaseReflectMemory",
    "Procedure",
    "ProcedureMemory",
    "ProcedureTrial",
    "ProgramAnswer",
    "ProgramResult",
    "ProgramVerifiedScorer",
    "QdrantStore",
    "Quantity",
    "ReflectMemory",
    "ReflectUpdateMemory",
    "ReflectionQueue",
    "ReflectionResult",
    "Route",
    "RunContext",
    "Sandbox",
    "SandboxError",
    "ScalingEngine",
    "ScalingEvent",
    "ScalingResult",
    "Scorer",
    "ScoringError",
    "SelfRefine",
    "SimilarityGate",
    "SpeedupChatModel",
    "SpeedupContext",
    "SpeedupError",
    "SpeedupMiddleware",
    "SpeedupResult",
    "TreeOfThoughts",
    "Usage",
    "__version__",
    "answers_equal",
    "aprogram_of_thought",
    "areflect",
    "areflect_update",
    "create_best_of_n_graph",
    "create_engine",
    "create_long_cot_graph",
    "create_reflection_update_node",
    "create_self_refine_graph",
    "create_speedup_graph",
    "create_tree_of_thoughts_graph",
    "default_store",
    "export_sft_dataset",
    "extract_answer",
    "extract_program",
    "memory_index",
    "migrate_store",
    "program_of_thought",
    "program_solution",
    "question_key",
    "reflect",
    "reflect_update",
    "reuse_key",
    "same_problem",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        for submodule in _SUBMODULES:
            module = import_module(f"{__name__}.{submodule}")
            if name in module.__all__:
                value = getattr(module, name)
                globals()[name] = value  # later lookups skip this function
                return value
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return __all__
