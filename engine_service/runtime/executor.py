"""Executors: how the engine core's pipeline calls run, on one process or on every rank.

The engine core (``engine.py``) hands each batch to an ``Executor`` on its device
thread and gets one outcome per job back; it never knows how many processes take
part. This is the split of vLLM's ``Executor`` and ``Worker``:

* ``LocalExecutor``: one process runs the call with its ``Worker``.
* ``LockstepExecutor``: rank 0 of a multi-process engine (``torchrun``, see
  ``engine_service.parallel``). It announces the call's jobs to the other ranks,
  runs the call on its own worker while every rank runs the same call in lockstep
  (the ranks agree on cancelled jobs at every step boundary), and settles: all
  ranks meet after the call. While idle it checks that the other ranks still answer.
* ``follow``: the life of every other rank. It serves no port; it runs each call
  rank 0 announces, stopping at the latents (only rank 0 decodes and encodes),
  until rank 0 stops the engine.

The transport (broadcasts, barrier, heartbeat) is ``engine_service.parallel.lockstep``;
what differs between ranks inside a call is given to the ``Worker`` as two small
strategies (its step sync and how a call ends).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from engine_service.errors import EngineError, JobCancelled, RankLost
from engine_service.models import LoadedModel
from engine_service.runtime.worker import STOP_AT_LATENTS, Member, Outcome, Report, Worker

if TYPE_CHECKING:
    from engine_service.parallel.lockstep import Lockstep

logger = logging.getLogger(__name__)


class Executor(abc.ABC):
    """Runs the engine core's pipeline calls. Called from the engine's device thread only."""

    heartbeat_s: float | None = None
    """An idle engine calls ``check`` this often (seconds); None = never."""

    @abc.abstractmethod
    def execute(self, members: Sequence[Member], report: Report | None = None) -> list[Outcome]:
        """Run one pipeline call for ``members``: one outcome each (see ``Worker.run``).

        ``report`` takes the members' step events, one batch per step (see ``Worker.run``).

        A call whose members are all cancelled before it starts does not run: each gets
        JobCancelled. Raises JobFailed when the call fails, RankLost when a rank is lost.
        """

    def check(self) -> None:  # noqa: B027 (a process of its own has nothing to check)
        """While idle: raise RankLost when a process the executor needs stopped answering."""


def _all_cancelled(members: Sequence[Member]) -> list[Outcome] | None:
    if all(m.cancelled for m in members):
        return [JobCancelled(m.spec.request_id) for m in members]
    return None


class LocalExecutor(Executor):
    """Runs every call in this process."""

    def __init__(self, models: Mapping[str, LoadedModel]):
        self._worker = Worker(models)

    def execute(self, members: Sequence[Member], report: Report | None = None) -> list[Outcome]:
        if (cancelled := _all_cancelled(members)) is not None:
            return cancelled
        return self._worker.run(members, report)


class LockstepExecutor(Executor):
    """Rank 0 of a multi-process engine: every call runs on every rank in lockstep."""

    def __init__(self, models: Mapping[str, LoadedModel], lockstep: Lockstep):
        if not lockstep.is_leader:
            raise ValueError(f"rank {lockstep.rank} follows rank 0: run `follow`, not an executor")
        self._lockstep = lockstep
        self._worker = Worker(models, step_sync=lockstep.sync_cancels)
        self.heartbeat_s = lockstep.heartbeat_s

    def execute(self, members: Sequence[Member], report: Report | None = None) -> list[Outcome]:
        if (cancelled := _all_cancelled(members)) is not None:
            return cancelled  # announced to nobody: the other ranks never see the call
        self._lockstep.announce([m.spec for m in members])
        try:
            return self._worker.run(members, report)
        finally:
            self._lockstep.settle()

    def check(self) -> None:
        self._lockstep.heartbeat()


def follow(models: Mapping[str, LoadedModel], lockstep: Lockstep) -> None:
    """A rank other than 0: run every call rank 0 announces, until it stops the engine.

    Each call runs with rank 0's cancel flags at every step boundary and stops at the
    latents; the rank keeps no outcome (rank 0 answers the jobs). A failed call is
    logged and the rank waits for the next one (rank 0 has the same failure and reports
    it). Raises RankLost when the group breaks.
    """
    worker = Worker(models, step_sync=lockstep.sync_cancels, outputs=STOP_AT_LATENTS)
    logger.info("rank %d of %d following rank 0", lockstep.rank, lockstep.world_size)
    while True:
        specs = lockstep.receive()
        if specs is None:
            logger.info("rank %d: stopped by rank 0", lockstep.rank)
            return
        try:
            worker.run([Member(spec) for spec in specs])
        except RankLost:
            raise
        except EngineError as err:
            logger.warning("rank %d: request failed: %s", lockstep.rank, err)
        finally:
            lockstep.settle()


__all__ = ["Executor", "LocalExecutor", "LockstepExecutor", "follow"]
