"""The public API: a sorted `__all__` whose every name imports, documented, and light."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import langchain_speedup

PACKAGE = Path(langchain_speedup.__file__).parent


def test_all_is_sorted_without_duplicates() -> None:
    names = langchain_speedup.__all__
    assert len(set(names)) == len(names)
    # ruff's RUF022 order: constants, then classes, then functions.
    kinds = [(0 if n.isupper() else 1 if n[0].isupper() else 2, n) for n in names]
    assert kinds == sorted(kinds)


def test_all_matches_the_type_checking_imports() -> None:
    # The names type checkers see are the names the package serves.
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    guarded = next(n for n in tree.body if isinstance(n, ast.If))
    imported = {
        alias.name
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported | {"__version__"} == set(langchain_speedup.__all__)


@pytest.mark.parametrize("name", langchain_speedup.__all__)
def test_every_public_name_is_importable_and_documented(name: str) -> None:
    value = getattr(langchain_speedup, name)
    assert value is not None
    if inspect.isclass(value) or inspect.isfunction(value):
        assert value.__doc__, f"{name} has no docstring"


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = langchain_speedup.nope  # type: ignore[attr-defined]


def test_version_is_a_string() -> None:
    assert isinstance(langchain_speedup.__version__, str)
    assert langchain_speedup.__version__


def test_errors_form_one_tree() -> None:
    errors = importlib.import_module("langchain_speedup.errors")
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), langchain_speedup.SpeedupError)
    assert issubclass(langchain_speedup.ConfigurationError, ValueError)
    assert issubclass(langchain_speedup.InvalidInputError, ValueError)
    assert langchain_speedup.ModelError("x", role="scorer").role == "scorer"


def _modules_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_importing_the_package_loads_no_optional_stack() -> None:
    loaded = _modules_after("import langchain_speedup")
    heavy = {
        "langchain",
        "langchain_openai",
        "openai",
        "numpy",
        "tqdm",
        "qdrant_client",
    }
    assert not heavy & loaded
    assert not {m for m in loaded if m.startswith("langchain_speedup.")} - {
        "langchain_speedup"
    }


@pytest.mark.parametrize(
    "module",
    [
        "langchain_speedup.scaling",
        "langchain_speedup.memory",
        "langchain_speedup.router",
    ],
)
def test_core_modules_load_neither_the_local_stack_nor_the_benchmarks(
    module: str,
) -> None:
    loaded = _modules_after(f"import {module}")
    assert not {
        m
        for m in loaded
        if m.startswith(("llama_cpp", "onnxruntime", "langchain_openai"))
    }
    assert not {
        m
        for m in loaded
        if m.startswith(("langchain_speedup.local", "langchain_speedup.bench"))
    }


def test_only_the_middleware_needs_langchain() -> None:
    # `langchain` is the `agents` extra: the chat-model wrapper works without it.
    assert "langchain" not in _modules_after(
        "from langchain_speedup import SpeedupChatModel, BudgetRouter"
    )
    assert "langchain" in _modules_after(
        "from langchain_speedup import SpeedupMiddleware"
    )


def test_no_module_imports_another_packages_private_modules() -> None:
    for path in PACKAGE.rglob("*.py"):
        package = path.parent.relative_to(PACKAGE.parent).as_posix().replace("/", ".")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                private = [
                    i for i, p in enumerate(parts) if p.startswith("_") and i > 0
                ]
                for i in private:
                    owner = ".".join(parts[:i])
                    assert package.startswith(owner), f"{path} imports {node.module}"


def test_memory_never_imports_scaling_or_the_router() -> None:
    for path in (PACKAGE / "memory").rglob("*.py"):
        source = path.read_text()
        assert "langchain_speedup.scaling" not in source, path
        assert "langchain_speedup.router" not in source, path
