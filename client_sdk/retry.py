"""Opt-in retries of calls the engine asks to repeat later.

An engine whose queue is full answers RESOURCE_EXHAUSTED with a
`google.rpc.RetryInfo` delay (reason QUEUE_FULL); one that is warming up or
draining answers UNAVAILABLE with a delay; an engine that cannot be reached
answers UNAVAILABLE without one. `RetryPolicy` retries exactly these: it waits
the engine's delay (stretched by up to `jitter`), or an exponential backoff
with full jitter where the engine gave none, never longer than
`max_backoff_s`, for at most `max_attempts` calls and never past the call's
deadline. Out-of-memory (RESOURCE_EXHAUSTED without RetryInfo), bad requests
and pipeline failures are never retried.

gRPC's own retry policy (a channel's service config) cannot read RetryInfo,
but it obeys the `grpc-retry-pushback-ms` trailer the engine sends with the
same delay; this policy is for callers who want the decision per call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from client_sdk.errors import APIError, ResourceExhaustedError, UnavailableError

__all__ = ["RetryPolicy", "resolve"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a call the engine asked to repeat later."""

    max_attempts: int = 5
    """Calls in all, the first included (gRPC's retry policy allows at most 5 too)."""
    initial_backoff_s: float = 0.5
    """Upper bound of the first backoff when the engine gave no delay."""
    backoff_multiplier: float = 2.0
    """Growth of that bound per attempt."""
    max_backoff_s: float = 30.0
    """No wait is longer, whatever the engine asked for."""
    jitter: float = 0.25
    """An engine-given delay is stretched by a random factor in [1, 1 + jitter], so that clients
    refused together do not come back together."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not 0 < self.initial_backoff_s <= self.max_backoff_s:
            raise ValueError("backoffs must satisfy 0 < initial_backoff_s <= max_backoff_s")
        if self.backoff_multiplier < 1 or self.jitter < 0:
            raise ValueError("backoff_multiplier must be >= 1 and jitter >= 0")

    def retryable(self, err: BaseException) -> bool:
        """True for a full queue (RetryInfo), warming up or draining, and an unreachable engine."""
        if isinstance(err, UnavailableError):
            return err.reason != "RANK_LOST"
        return isinstance(err, ResourceExhaustedError) and err.retry_after is not None

    def delay(self, attempt: int, err: APIError, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed with `err`."""
        rng = rng or random
        retry_after = getattr(err, "retry_after", None)
        if retry_after:
            return min(self.max_backoff_s, retry_after * rng.uniform(1.0, 1.0 + self.jitter))
        bound = min(self.max_backoff_s, self.initial_backoff_s * self.backoff_multiplier ** (attempt - 1))
        return rng.uniform(0.0, bound)


def resolve(call: RetryPolicy | bool | None, client: RetryPolicy | None) -> RetryPolicy | None:
    """The policy of one call: its own (True = the defaults, False = none), else the client's."""
    if call is None:
        return client
    if call is True:
        return client or RetryPolicy()
    return call or None


def deadline_of(timeout: float | None, now: float) -> float | None:
    """The monotonic time a call of `timeout` seconds (None: no deadline) started at `now` must end by."""
    return None if timeout is None else now + timeout


def next_wait(
    policy: RetryPolicy | None, attempt: int, err: APIError, deadline: float | None, now: float
) -> float | None:
    """Seconds to wait before retrying after attempt `attempt` failed with `err`; None: give up and raise."""
    if policy is None or attempt >= policy.max_attempts or not policy.retryable(err):
        return None
    wait = policy.delay(attempt, err)
    if deadline is not None and now + wait >= deadline:
        return None
    return wait
