"""Keeping the ranks of one engine in lockstep.

The transport only: which process runs what is the runtime's business
(``engine_service.runtime.executor``). Before each pipeline call rank 0
broadcasts the call's job specs; at every step boundary it broadcasts which
jobs are cancelled, so every rank drops the same jobs at the same step; after each call all ranks meet at a
monitored barrier; an idle rank 0 sends a heartbeat (a barrier) every few
seconds. Messages travel over gloo groups (CPU tensors, pickled
specs) even when the pipeline's own collectives run on NCCL.

Nothing waits forever: the step group and the barrier time out, and the
barrier names the rank that did not arrive. Rank 0 then raises
:class:`RankLost` and the engine stops serving. Only the wait for the next job
has no time limit (a follower idles as long as the server does); it ends with
an error when rank 0's process goes away.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Sequence

import torch
import torch.distributed as dist

from engine_service.errors import RankLost
from engine_service.jobs import JobSpec

logger = logging.getLogger(__name__)

#: A day: the job group waits this long for the next request before a follower gives up.
IDLE_TIMEOUT = datetime.timedelta(days=1)
_STOP = "stop"
_PING = "ping"


@dataclasses.dataclass
class Lockstep:
    """One rank's view of the engine's process group."""

    timeout_s: float
    """How long a step collective or the end-of-call barrier waits for the other ranks."""
    heartbeat_s: float = 5.0
    """An idle rank 0 checks every this many seconds that the other ranks still answer."""
    rank: int = dataclasses.field(init=False)
    world_size: int = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        timeout = datetime.timedelta(seconds=self.timeout_s)
        self._jobs = dist.new_group(backend="gloo", timeout=IDLE_TIMEOUT)
        self._steps = dist.new_group(backend="gloo", timeout=timeout)
        self._broken: str | None = None

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    # -- rank 0 ---------------------------------------------------------------

    def announce(self, specs: Sequence[JobSpec]) -> None:
        """Rank 0: hand the next call's jobs to every rank."""
        self._check()
        try:
            dist.broadcast_object_list([list(specs)], src=0, group=self._jobs)
        except Exception as err:
            self._lose(f"could not reach the other ranks: {err}")

    def heartbeat(self) -> None:
        """Rank 0, while idle: every rank meets at the barrier; raises RankLost naming one that does not."""
        self._check()
        try:
            dist.broadcast_object_list([_PING], src=0, group=self._jobs)
        except Exception as err:
            self._lose(f"could not reach the other ranks: {err}")
        self.settle()

    def stop(self) -> None:
        """Rank 0: tell the followers to exit (best effort: a broken group is left as it is)."""
        if self._broken is not None:
            return
        try:
            dist.broadcast_object_list([_STOP], src=0, group=self._jobs)
        except Exception as err:  # the followers are gone already
            logger.warning("could not stop the other ranks: %s", err)

    # -- every rank -------------------------------------------------------------

    def sync_cancels(self, flags: Sequence[bool]) -> list[bool]:
        """Rank 0's cancel flags of the call's jobs, on every rank (at a step boundary)."""
        tensor = torch.tensor([int(f) for f in flags], dtype=torch.int32)
        try:
            dist.broadcast(tensor, src=0, group=self._steps)
        except Exception as err:
            self._lose(f"a rank stopped answering during a step: {err}")
        return [bool(v) for v in tensor.tolist()]

    def settle(self) -> None:
        """All ranks meet after a call; raises RankLost on rank 0 naming a rank that did not come."""
        self._check()
        try:
            dist.monitored_barrier(
                group=self._steps, timeout=datetime.timedelta(seconds=self.timeout_s), wait_all_ranks=True
            )
        except Exception as err:
            self._lose(f"a rank did not answer: {err}")

    def _check(self) -> None:
        if self._broken is not None:
            raise RankLost(self._broken)

    def _lose(self, reason: str) -> None:
        self._broken = f"parallel engine broken ({self.world_size} ranks): {reason}"
        logger.error("%s", self._broken)
        raise RankLost(self._broken)

    # -- followers --------------------------------------------------------------

    def receive(self) -> list[JobSpec] | None:
        """A follower: the next call's jobs, or None when rank 0 stops the engine (heartbeats answered here)."""
        while True:
            box: list = [None]
            dist.broadcast_object_list(box, src=0, group=self._jobs)
            if box[0] == _PING:
                self.settle()
                continue
            return None if box[0] == _STOP else box[0]
