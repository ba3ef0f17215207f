"""Remembered over-limit verdicts: a caller flooding past its limit is refused here, without Redis.

When Redis says a rule is over its limit it also says when one more request could pass (the GCRA retry time).
Until then Redis would refuse every request on that rule too, so the replica remembers the verdict and refuses
locally (as envoy's rate-limit service does with its local over-limit cache): a flood costs no round trip.
Exactness across replicas holds, since only refusals are remembered and none outlives Redis's own retry time.
What can differ: a refund (a failed mint) on another replica gives an allowance back that this replica only
sees once its remembered verdict has expired; a refund here forgets the verdicts at once. A rate limit's retry time
is short (a fraction of its period), but a spend budget's can be hours away, and refunds on other replicas can make
it whole long before: a budget refusal is therefore remembered for BUDGET_MEMORY_SECONDS at most (a flood of one
caller still costs at most one Redis call a second), while the caller is told the real retry time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from service.ratelimit.base import Decision, LimitCheck, LimitState

BUDGET_MEMORY_SECONDS = 1.0


class RememberedRefusals:
    """At most `max_entries` verdicts, each until its retry time (bounded memory: the oldest go first)."""

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._until: dict[str, tuple[float, float, LimitState]] = {}
        self._max = max_entries
        self._clock = clock

    def __len__(self) -> int:
        return len(self._until)

    def refusal(self, checks: Sequence[LimitCheck]) -> Decision | None:
        """A refusal Redis would give now for one of `checks`, or None (ask Redis)."""
        if not self._until:
            return None
        now = self._clock()
        for check in checks:
            entry = self._until.get(check.slot)
            if entry is None:
                continue
            until, seen, state = entry
            if until <= now:
                del self._until[check.slot]
                continue
            # Only this rule's own verdict: it may be shared (the global rule), and others' rules are not ours.
            elapsed = now - seen
            return Decision(
                False,
                (
                    LimitState(
                        check,
                        state.remaining,
                        max(0.0, state.reset_after - elapsed),
                        max(0.0, state.retry_after - elapsed),
                    ),
                ),
            )
        return None

    def remember(self, decision: Decision) -> None:
        """Keep the over-limit verdicts of a refusal Redis just gave (never a block: an unblock must count at once)."""
        if decision.allowed or decision.blocked is not None:
            return
        now = self._clock()
        for state in decision.states:
            if state.retry_after > 0:
                if len(self._until) >= self._max:
                    self._evict(now)
                kept = min(state.retry_after, BUDGET_MEMORY_SECONDS) if state.check.is_budget else state.retry_after
                self._until[state.check.slot] = (now + kept, now, state)

    def forget(self, checks: Sequence[LimitCheck]) -> None:
        """A refund here gave allowance back: these rules' verdicts no longer hold."""
        for check in checks:
            self._until.pop(check.slot, None)

    def _evict(self, now: float) -> None:
        for slot in [s for s, (until, _, _) in self._until.items() if until <= now]:
            del self._until[slot]
        while len(self._until) >= self._max:
            del self._until[next(iter(self._until))]
