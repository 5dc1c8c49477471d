"""Runtime stage: pacing of calls to the provider (requests and tokens per minute).

The LLM client asks the limiter before each network attempt. Requests are paced
evenly (one start every 60/rpm seconds) rather than released in bursts, so a
capped run holds the cap steadily and never trips the provider's own limiter.
Tokens use a bucket holding one minute's allowance, debited by an estimate up
front and corrected once the response reports its real usage. A 429 with
Retry-After pauses every caller, not only the one that was told, because the
provider's limit is shared by all of them; a server cannot hold the run longer
than `MAX_RETRY_AFTER` that way, and a wait that is not a finite number is
ignored.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

# The longest a server's Retry-After (or rate-limit reset header) may hold a call or the run. The openai SDK
# ignores longer ones for the same reason: "come back in an hour" (or in `inf` seconds) would stall a run that
# a user watches, and waiting less only costs another 429.
MAX_RETRY_AFTER = 60.0


class RateLimiter:
    """Paces request starts to ``rpm`` and token use to ``tpm`` (None: no limit)."""

    def __init__(self, rpm: int | None = None, tpm: int | None = None,
                 clock: Callable[[], float] = time.monotonic, max_pause: float = MAX_RETRY_AFTER) -> None:
        self.rpm, self.tpm, self._clock = rpm, tpm, clock
        self.max_pause = max_pause
        self._next_start = 0.0
        self._tokens = float(tpm or 0)  # the bucket starts with one minute's allowance
        self._refilled = clock()
        self._paused_until = 0.0
        self._lock: asyncio.Lock | None = None

    def _now(self) -> float:
        return self._clock()

    async def acquire(self, estimated_tokens: int = 0) -> None:
        """Wait until one more request (of about ``estimated_tokens``) may start."""
        if not self.rpm and not self.tpm:
            await self._wait_for_pause()  # nothing to pace; only a server's Retry-After holds us
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        # The lock makes waiters take their slots in arrival order (FIFO fairness).
        async with self._lock:
            await self._wait_for_pause()
            if self.rpm:
                now = self._now()
                start = max(now, self._next_start)
                self._next_start = start + 60.0 / self.rpm
                if start > now:
                    await asyncio.sleep(start - now)
            if self.tpm:
                await self._take_tokens(min(estimated_tokens, self.tpm))
            await self._wait_for_pause()

    async def _wait_for_pause(self) -> None:
        delay = self._paused_until - self._now()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _take_tokens(self, amount: int) -> None:
        assert self.tpm
        self._refill()
        if self._tokens < amount:
            await asyncio.sleep((amount - self._tokens) * 60.0 / self.tpm)
            self._refill()
        self._tokens -= amount

    def _refill(self) -> None:
        assert self.tpm
        now = self._now()
        self._tokens = min(float(self.tpm), self._tokens + (now - self._refilled) * self.tpm / 60.0)
        self._refilled = now

    def holds(self) -> bool:
        """Whether acquire may wait at all: limits are set, or a server's pause is on."""
        return bool(self.rpm or self.tpm) or self._paused_until > self._now()

    def record_usage(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Correct the token bucket once a response says how many tokens the call really used."""
        if self.tpm:
            self._tokens -= actual_tokens - min(estimated_tokens, self.tpm)

    def pause_for(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` (a 429's Retry-After or rate-limit reset), at most max_pause."""
        if not math.isfinite(seconds):
            return
        pause = min(self.max_pause, max(0.0, seconds))
        self._paused_until = max(self._paused_until, self._now() + pause)
