"""Single flight: a question asked concurrently in one process is solved once. Private.

The router claims a question (by store, namespace and question key) before
solving it; a call asking the same question meanwhile waits for that claim
to land, from a thread or an event loop, then reads the stored episode.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

WAIT_SECONDS = 600.0
"""The longest a call waits for a concurrent call's solve of its question."""


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # a waiter that timed out or was cancelled
        future.set_result(None)


class Flight:
    """A question being solved; calls asking it meanwhile wait for it to land."""

    def __init__(self, store: object, owner: str) -> None:
        self.store, self.owner = store, owner  # the store: its id stays unique
        self._landed = threading.Event()
        self._lock = threading.Lock()
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def land(self) -> None:
        """Wake every call waiting for this flight."""
        with self._lock:
            self._landed.set()
            waiting, self._waiting = self._waiting, []
        for loop, future in waiting:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(_resolve, future)

    def wait(self) -> bool:
        """Block until the flight lands; whether it timed out (stale)."""
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            # Blocking this thread could stall the loop that runs the solve.
            return False
        return not self._landed.wait(WAIT_SECONDS)

    async def await_landing(self) -> bool:
        """Async form of `wait`."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._landed.is_set():
                return False
            self._waiting.append((loop, future))
        try:
            await asyncio.wait_for(future, WAIT_SECONDS)
        except TimeoutError:
            return True
        return False


class Flights:
    """The questions in flight in this process, by (store, namespace, key)."""

    def __init__(self) -> None:
        self._flights: dict[tuple[int, str, str], Flight] = {}
        self._lock = threading.Lock()

    def claim(
        self,
        store: object,
        namespace: str,
        key: str,
        owner: str,
        *,
        stale: Flight | None = None,
    ) -> Flight | None:
        """The flight ahead of `owner`, or `None` once `owner` holds the claim.

        A `stale` flight (waited for too long) is taken over.
        """
        at = (id(store), namespace, key)
        with self._lock:
            ahead = self._flights.get(at)
            if ahead is not None and ahead is not stale:
                return ahead
            self._flights[at] = Flight(store, owner)
            return None

    def land(self, store: object, namespace: str, key: str, owner: str) -> None:
        """End `owner`'s claim, if it still holds it; waiting calls go on."""
        at = (id(store), namespace, key)
        with self._lock:
            flight = self._flights.get(at)
            if flight is None or flight.owner != owner:
                return
            del self._flights[at]
        flight.land()

    def __len__(self) -> int:
        return len(self._flights)

    def clear(self) -> None:
        """Forget every claim (for tests)."""
        with self._lock:
            self._flights.clear()


FLIGHTS = Flights()
