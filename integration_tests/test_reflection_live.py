"""Reflect-Update lessons on the real model, MiniLM and on-disk embedded Qdrant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NotRequired
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AnyMessage, BaseMessage, HumanMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_openai import ChatOpenAI
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.store.base import BaseStore
from typing_extensions import TypedDict

from integration_tests.conftest import copy_of_store, episodes_in, new_store
from langchain_speedup import (
    BestOfN,
    Episode,
    EpisodicMemory,
    FunctionScorer,
    SpeedupResult,
    create_speedup_graph,
)
from langchain_speedup.bench.questions import DEMO_SYSTEM_PROMPT, TEMPLATES
from langchain_speedup.local import MiniLMEmbeddings
from langchain_speedup.memory import ReflectionResult, create_reflection_update_node

pytestmark = pytest.mark.integration

NAMESPACE = "lessons"
MAX_CHARS = 300
"""The lessons' bound; the reflection's token cap lets replies run past it."""
REFLECT_TOKENS = 120
QUESTIONS = (TEMPLATES[0].question(0), TEMPLATES[7].question(0))
ASYNC_QUESTION = TEMPLATES[4].question(0)
REFLECTION_TAG = "speedup:reflection"

ChatRunnable = Runnable[LanguageModelInput, BaseMessage]


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    speedup: NotRequired[SpeedupResult]
    reflection: NotRequired[ReflectionResult]


@dataclass
class Call:
    """One chat model call seen by `Recorder`."""

    tags: list[str]
    prompt: str
    reply: str = ""


class Recorder(BaseCallbackHandler):
    """Records every chat model call's prompt, reply and tags."""

    run_inline = True

    def __init__(self) -> None:
        self.calls: dict[UUID, Call] = {}

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        prompt = "\n".join(str(m.content) for m in messages[0])
        self.calls[run_id] = Call(tags=list(tags or []), prompt=prompt)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        if run_id in self.calls:
            self.calls[run_id].reply = response.generations[0][0].text

    def reflections(self) -> list[Call]:
        """The calls made under the `reflection` role, in order."""
        return [c for c in self.calls.values() if REFLECTION_TAG in c.tags]


@dataclass(frozen=True)
class Step:
    """One question through the parent graph, and the store right after it."""

    out: dict[str, Any]
    lessons: str | None
    count: int
    reflections: list[Call] = field(default_factory=list)


@dataclass(frozen=True)
class Learned:
    """Lessons learned from live answers, in a store."""

    store: BaseStore
    steps: list[Step]
    episodes: list[Episode]


def parent_graph(
    solver: ChatOpenAI,
    reflector: ChatRunnable,
    store: BaseStore,
    embeddings: MiniLMEmbeddings,
) -> Any:
    """The speedup graph, then the Reflect-Update node, as the node's docs wire it."""
    builder = StateGraph(State)
    builder.add_node(
        "speedup",
        create_speedup_graph(
            BestOfN(
                solver,
                budget=1,
                # A fixed score: an episode is verified when its answer parses.
                scorer=FunctionScorer(lambda question, candidate: 1.0),
                system_prompt=DEMO_SYSTEM_PROMPT,
            ),
            store=store,
            namespace=NAMESPACE,
        ),
    )
    builder.add_node(
        "reflect",
        create_reflection_update_node(
            reflector, store=store, namespace=NAMESPACE, max_chars=MAX_CHARS
        ),
    )
    builder.add_edge(START, "speedup")
    builder.add_edge("speedup", "reflect")
    return builder.compile()


def reflector_of(chat_model: ChatOpenAI) -> ChatRunnable:
    return chat_model.bind(max_tokens=REFLECT_TOKENS)


@pytest.fixture(scope="module")
def learned(
    chat_model: ChatOpenAI,
    embeddings: MiniLMEmbeddings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Learned:
    """Two questions answered and reflected on by the live model."""
    steps: list[Step] = []
    store = new_store(embeddings)
    graph = parent_graph(chat_model, reflector_of(chat_model), store, embeddings)
    for question in QUESTIONS:
        recorder = Recorder()
        config = RunnableConfig(callbacks=[recorder])
        out = graph.invoke({"messages": [HumanMessage(question)]}, config)
        steps.append(
            Step(
                out=out,
                lessons=EpisodicMemory(store).get_lessons(NAMESPACE),
                count=len(episodes_in(store, NAMESPACE)),
                reflections=recorder.reflections(),
            )
        )
    episodes = episodes_in(store, NAMESPACE)
    return Learned(store=store, steps=steps, episodes=episodes)


def check_update(
    reflection: ReflectionResult,
    speedup: SpeedupResult,
    calls: Sequence[Call],
    previous: str | None,
) -> str:
    """Check one successful live update; return the lessons it wrote."""
    assert reflection["kind"] == "reflect_update"
    assert reflection["namespace"] == NAMESPACE
    assert reflection["episode_id"] == speedup["episode_id"] is not None
    assert reflection["error"] is None
    assert reflection["updated"]
    text = reflection["text"]
    assert text is not None
    assert text.strip() == text != ""
    assert len(text) <= MAX_CHARS
    # One reflection call, which saw the old lessons and the new episode, and
    # whose reply the lessons were cut from.
    [call] = calls
    assert (previous or "(none yet)") in call.prompt
    assert speedup["question"] in call.prompt
    assert speedup["answer"].strip() in call.prompt
    assert f"At most {MAX_CHARS} characters" in call.prompt
    assert text in call.reply
    return text


def test_reflection_node_writes_bounded_lessons_from_each_live_answer(
    learned: Learned,
) -> None:
    previous: str | None = None
    for i, step in enumerate(learned.steps):
        speedup = step.out["speedup"]
        assert speedup["route"]["decision"] != "reuse"
        text = check_update(step.out["reflection"], speedup, step.reflections, previous)
        # What the node reported is what the store holds.
        assert step.lessons == text
        assert step.count == i + 1
        verified = speedup["final_answer"] is not None
        outcome = "Outcome: verified" if verified else "Outcome: NOT verified"
        assert outcome in step.reflections[0].prompt
        previous = text
    assert [e["id"] for e in learned.episodes] == [
        s.out["speedup"]["episode_id"] for s in learned.steps
    ]


def test_lessons_and_episodes_are_read_back_from_the_store(learned: Learned) -> None:
    memory = EpisodicMemory(learned.store)
    assert memory.get_lessons(NAMESPACE) == learned.steps[-1].lessons
    assert memory.episodes(NAMESPACE) == learned.episodes
    assert len(learned.episodes) == len(QUESTIONS)
    assert memory.get_lessons("elsewhere") is None


def test_unreachable_reflection_model_keeps_the_lessons_and_the_episodes(
    learned: Learned, unreachable_model: ChatOpenAI, embeddings: MiniLMEmbeddings
) -> None:
    dead = unreachable_model
    previous = learned.steps[-1].lessons
    assert previous is not None
    store = copy_of_store(learned.store, embeddings)
    node = create_reflection_update_node(
        dead, store=store, namespace=NAMESPACE, max_chars=MAX_CHARS
    )
    speedup = learned.steps[-1].out["speedup"]
    out = node.invoke({"speedup": speedup})
    reflection = out["reflection"]
    assert not reflection["updated"]
    assert reflection["episode_id"] == speedup["episode_id"]
    assert reflection["text"] == previous
    error = reflection["error"]
    assert error is not None
    assert "the reflection model call failed" in error
    assert "reachable" in error
    assert EpisodicMemory(store).get_lessons(NAMESPACE) == previous
    assert len(episodes_in(store, NAMESPACE)) == len(QUESTIONS)
    assert episodes_in(store, NAMESPACE) == learned.episodes


async def test_async_graph_rewrites_the_reopened_lessons_from_a_new_live_answer(
    learned: Learned,
    chat_model: ChatOpenAI,
    embeddings: MiniLMEmbeddings,
    tmp_path: Path,
) -> None:
    previous = learned.steps[-1].lessons
    store = copy_of_store(learned.store, embeddings)
    graph = parent_graph(chat_model, reflector_of(chat_model), store, embeddings)
    recorder = Recorder()
    out = await graph.ainvoke(
        {"messages": [HumanMessage(ASYNC_QUESTION)]},
        RunnableConfig(callbacks=[recorder]),
    )
    speedup = out["speedup"]
    assert speedup["route"]["decision"] != "reuse"
    text = check_update(out["reflection"], speedup, recorder.reflections(), previous)
    assert await EpisodicMemory(store).aget_lessons(NAMESPACE) == text
    assert len(episodes_in(store, NAMESPACE)) == len(QUESTIONS) + 1
    assert episodes_in(store, NAMESPACE)[:-1] == learned.episodes
