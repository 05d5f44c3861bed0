"""An asyncio event loop whose clock jumps: when every task waits, time moves straight to the
next timer. `asyncio.sleep(60)` returns at once with `loop.time()` 60 s later, and concurrent
tasks keep their order in time, so code that paces itself is tested exactly, with no real wait.

    def test_x() -> None:               # a plain test: the loop is the test's own
        run_virtual(main())

Only for code without real I/O: a task waiting on a socket or a thread would see time race past.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise RuntimeError("every task waits and no timer is due: nothing can move on")
        self.now += max(0.0, timeout)
        return super().select(0)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)
