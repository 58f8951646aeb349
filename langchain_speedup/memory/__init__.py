"""Episodic memory: episodes of solved questions, stored on Qdrant.

Also the memory mechanisms that turn retrieved episodes into a method's
memory (`InContextMemory`, `ReflectMemory`, `MultiCaseReflectMemory`,
`ReflectUpdateMemory`), the reflections they read (`reflect`,
`reflect_update`, `ReflectionQueue`, `create_reflection_update_node`), the
similarity gate that decides when memory may enter a prompt
(`SimilarityGate`), and the SFT export and fine-tuning helpers
(`export_sft_dataset`, `OpenAIFineTuner`, `switch_to_tuned`).
"""

from langchain_speedup.memory.episodes import (
    Episode,
    EpisodeMatch,
    episode_from_result,
    episode_id,
)
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
from langchain_speedup.memory.reflection import (
    LessonsStore,
    ReflectionQueue,
    ReflectionResult,
    ReflectionStore,
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
from langchain_speedup.memory.store import (
    DEFAULT_COLLECTION,
    EpisodicStore,
    QdrantEpisodicStore,
)

__all__ = [
    "DEFAULT_COLLECTION",
    "BandStats",
    "Episode",
    "EpisodeMatch",
    "EpisodicStore",
    "FineTuneStatus",
    "FineTuner",
    "GateVerdict",
    "InContextMemory",
    "LessonsStore",
    "MemoryMechanism",
    "MultiCaseReflectMemory",
    "OpenAIFineTuner",
    "QdrantEpisodicStore",
    "ReflectMemory",
    "ReflectUpdateMemory",
    "ReflectionQueue",
    "ReflectionResult",
    "ReflectionStore",
    "SimilarityGate",
    "areflect",
    "areflect_update",
    "create_reflection_update_node",
    "episode_from_result",
    "episode_id",
    "export_sft_dataset",
    "reflect",
    "reflect_update",
    "saving_of",
    "switch_to_tuned",
    "validate_sft_jsonl",
]
