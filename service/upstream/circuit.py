"""A small circuit breaker: stop calling an upstream that keeps failing, probe it again after a pause."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `reset_after` seconds lets one probe through.

    A successful probe closes it; a failed probe opens it again for another `reset_after`.
    """

    def __init__(
        self,
        threshold: int,
        reset_after: float,
        on_change: Callable[[State], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = max(1, threshold)
        self._reset_after = reset_after
        self._on_change = on_change
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._state: State = "closed"
        self._probe_in_flight = False

    @property
    def state(self) -> State:
        """Current state, moving open → half_open once the pause is over."""
        if self._state == "open" and self._clock() - self._opened_at >= self._reset_after:
            self._set("half_open")
        return self._state

    def retry_after(self) -> float:
        """Seconds until the next probe may go out."""
        return max(0.0, self._reset_after - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether a call may go upstream now (claims the single probe slot when half open)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        """An upstream call succeeded."""
        self._failures = 0
        self._probe_in_flight = False
        if self._state != "closed":
            self._set("closed")

    def record_failure(self) -> None:
        """An upstream call failed in a way that says the upstream is unhealthy."""
        self._failures += 1
        was_probe = self._probe_in_flight
        self._probe_in_flight = False
        if was_probe or self._failures >= self._threshold:
            self._opened_at = self._clock()
            self._set("open")

    def release(self) -> None:
        """A call ended without telling anything about upstream health (e.g. a 4xx rejection)."""
        self._probe_in_flight = False

    def _set(self, state: State) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(state)
