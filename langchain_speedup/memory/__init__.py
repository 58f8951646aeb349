"""Episodic memory: the store, the similarity gate, memory mechanisms, procedures, reflections, SFT."""

from langchain_speedup.memory.episodes import episode_from_result, precedents_of
from langchain_speedup.memory.gating import (
    BandStats,
    GateVerdict,
    SimilarityGate,
    saving_of,
)
from langchain_speedup.memory.mechanisms import (
    InContextMemory,
    MemoryMechanism,
    MultiCaseReflectMemory,
    ReflectMemory,
    ReflectUpdateMemory,
)
from langchain_speedup.memory.migrate import migrate_store
from langchain_speedup.memory.procedures import ProcedureMemory
from langchain_speedup.memory.qdrant import QdrantStore
from langchain_speedup.memory.reflection import (
    ReflectionOptions,
    ReflectionQueue,
    ReflectionResult,
    areflect,
    areflect_update,
    create_reflection_update_node,
    reflect,
    reflect_update,
)
from langchain_speedup.memory.sft import (
    FineTuner,
    FineTuneStatus,
    OpenAIFineTuner,
    export_sft_dataset,
    switch_to_tuned,
    validate_sft_jsonl,
)
from langchain_speedup.memory.store import EpisodicMemory, default_store, memory_index

__all__ = [
    "BandStats",
    "EpisodicMemory",
    "FineTuneStatus",
    "FineTuner",
    "GateVerdict",
    "InContextMemory",
    "MemoryMechanism",
    "MultiCaseReflectMemory",
    "OpenAIFineTuner",
    "ProcedureMemory",
    "QdrantStore",
    "ReflectMemory",
    "ReflectUpdateMemory",
    "ReflectionOptions",
    "ReflectionQueue",
    "ReflectionResult",
    "SimilarityGate",
    "areflect",
    "areflect_update",
    "create_reflection_update_node",
    "default_store",
    "episode_from_result",
    "export_sft_dataset",
    "memory_index",
    "migrate_store",
    "precedents_of",
    "reflect",
    "reflect_update",
    "saving_of",
    "switch_to_tuned",
    "validate_sft_jsonl",
]
