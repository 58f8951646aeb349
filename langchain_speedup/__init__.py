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
    MemoryContext,
    ScalingResult,
    abest_of_n,
    best_of_n,
    create_best_of_n_graph,
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
    "MemoryContext",
    "MemoryStoreError",
    "ModelError",
    "QdrantEpisodicStore",
    "Route",
    "ScalingResult",
    "Scorer",
    "ScoringError",
    "SpeedupError",
    "SpeedupResult",
    "Usage",
    "__version__",
    "abest_of_n",
    "best_of_n",
    "create_best_of_n_graph",
    "create_speedup_graph",
    "extract_answer",
    "question_key",
    "same_problem",
]
