"""langchain-speedup: test-time scaling for LangGraph that gets cheaper with experience.

Adaptive scaling methods stop once an answer scores above a threshold; a
memory-aware budget router gives a question less compute the more it resembles
past, verified experience, stored in an episodic store on Qdrant.
"""

from importlib.metadata import PackageNotFoundError, version

from langchain_speedup.answers import extract_answer, question_key, same_problem
from langchain_speedup.budget import Ledger, Usage
from langchain_speedup.errors import (
    ConfigurationError,
    InvalidInputError,
    LocalStackError,
    MemoryStoreError,
    ModelError,
    ScoringError,
    SpeedupError,
)
from langchain_speedup.memory import (
    Episode,
    EpisodeMatch,
    EpisodicStore,
    QdrantEpisodicStore,
    SimilarityGate,
)
from langchain_speedup.router import (
    BudgetRouter,
    Route,
    SpeedupResult,
    create_speedup_graph,
)
from langchain_speedup.scaling import (
    BestOfN,
    Candidate,
    Exemplar,
    LongCoT,
    MemoryContext,
    ScalingEvent,
    ScalingResult,
    SelfRefine,
    TreeOfThoughts,
    abest_of_n,
    along_cot,
    aself_refine,
    atree_of_thoughts,
    best_of_n,
    create_best_of_n_graph,
    create_long_cot_graph,
    create_self_refine_graph,
    create_tree_of_thoughts_graph,
    long_cot,
    self_refine,
    tree_of_thoughts,
)
from langchain_speedup.scoring import (
    ConsensusScorer,
    FunctionScorer,
    LLMJudgeScorer,
    Scorer,
)

try:
    __version__ = version("langchain-speedup")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "BestOfN",
    "BudgetRouter",
    "Candidate",
    "ConfigurationError",
    "ConsensusScorer",
    "Episode",
    "EpisodeMatch",
    "EpisodicStore",
    "Exemplar",
    "FunctionScorer",
    "InvalidInputError",
    "LLMJudgeScorer",
    "Ledger",
    "LocalStackError",
    "LongCoT",
    "MemoryContext",
    "MemoryStoreError",
    "ModelError",
    "QdrantEpisodicStore",
    "Route",
    "ScalingEvent",
    "ScalingResult",
    "Scorer",
    "ScoringError",
    "SelfRefine",
    "SimilarityGate",
    "SpeedupError",
    "SpeedupResult",
    "TreeOfThoughts",
    "Usage",
    "__version__",
    "abest_of_n",
    "along_cot",
    "aself_refine",
    "atree_of_thoughts",
    "best_of_n",
    "create_best_of_n_graph",
    "create_long_cot_graph",
    "create_self_refine_graph",
    "create_speedup_graph",
    "create_tree_of_thoughts_graph",
    "extract_answer",
    "long_cot",
    "question_key",
    "same_problem",
    "self_refine",
    "tree_of_thoughts",
]
