"""Ways a program lets go of a coroutine without running it to completion (tests of item 15: spans end,
no thread leaks, no warning plain Python would not give)."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Callable
from typing import Any

import pytest


def cancelled_before_it_starts(make: Callable[[], Any]) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(make())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def closed_unstarted(make: Callable[[], Any]) -> None:
    make().close()


def dropped_unawaited(make: Callable[[], Any]) -> None:
    make()


def thrown_into_unstarted(make: Callable[[], Any]) -> None:
    coro = make()
    with pytest.raises(LookupError):
        coro.throw(LookupError("stop"))


def awaited_by_hand_never_stepped(make: Callable[[], Any]) -> None:
    """Its ``__await__()`` iterator taken (as an event loop or a hand-written awaitable does) and dropped before its
    first step. Before, the iterator of ours warned "never awaited" under its own name, and the program's coroutine
    again, later."""
    make().__await__()


def awaited_by_hand_then_closed(make: Callable[[], Any]) -> None:
    """Its ``__await__()`` iterator taken, never stepped, then the coroutine closed: nothing ran, nothing warns.
    Before, the close went to that iterator of ours alone, and the program's coroutine warned "never awaited"."""
    coro = make()
    coro.__await__()
    coro.close()


SCENARIOS: dict[str, Callable[[Callable[[], Any]], None]] = {
    f.__name__: f for f in (cancelled_before_it_starts, closed_unstarted, dropped_unawaited, thrown_into_unstarted,
                            awaited_by_hand_never_stepped, awaited_by_hand_then_closed)}


def warnings_of(scenario: Callable[[Callable[[], Any]], None], make: Callable[[], Any]) -> list[str]:
    """The warnings ``scenario(make)`` gives, garbage collection included.

    Garbage left by earlier tests in this worker (an event loop a framework never closed, say) is collected
    first, with its warnings dropped: otherwise its ``ResourceWarning`` lands in whichever capture happens to
    run the collector, and the plain and traced lists differ for a reason that is not the scenario's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scenario(make)
        gc.collect()
    return [f"{w.category.__name__}: {w.message}" for w in caught]
