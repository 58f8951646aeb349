"""The public API: exactly these names, all importable from the top level."""

from __future__ import annotations

import importlib

import pytest

import langchain_speedup

EXPECTED_ALL = [
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


def test_all_is_exactly_the_expected_names() -> None:
    assert sorted(EXPECTED_ALL) == sorted(langchain_speedup.__all__)
    assert len(set(langchain_speedup.__all__)) == len(langchain_speedup.__all__)


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_public_name_is_importable(name: str) -> None:
    # `from langchain_speedup import name`, spelled so the name can vary.
    module = importlib.import_module("langchain_speedup")
    imported = __import__("langchain_speedup", fromlist=[name])
    assert imported is module
    assert hasattr(module, name)
    assert getattr(module, name) is not None


def test_version_is_a_string() -> None:
    assert isinstance(langchain_speedup.__version__, str)
    assert langchain_speedup.__version__


@pytest.mark.parametrize(
    "error",
    [
        "ConfigurationError",
        "InvalidInputError",
        "ModelError",
        "ScoringError",
        "MemoryStoreError",
        "LocalStackError",
    ],
)
def test_every_error_derives_from_speedup_error(error: str) -> None:
    cls = getattr(langchain_speedup, error)
    assert issubclass(cls, langchain_speedup.SpeedupError)


def test_value_errors_are_value_errors() -> None:
    assert issubclass(langchain_speedup.ConfigurationError, ValueError)
    assert issubclass(langchain_speedup.InvalidInputError, ValueError)


def test_model_error_carries_its_role() -> None:
    assert langchain_speedup.ModelError("x").role == "solver"
    assert langchain_speedup.ModelError("x", role="scorer").role == "scorer"


def test_subpackages_import_without_the_local_extra() -> None:
    # The core modules must not pull in the optional local stack on import.
    for module in (
        "langchain_speedup.scaling",
        "langchain_speedup.memory",
        "langchain_speedup.router",
        "langchain_speedup.scoring",
        "langchain_speedup.budget",
    ):
        importlib.import_module(module)
