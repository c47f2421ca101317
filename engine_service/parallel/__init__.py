"""Parallelism: context parallel (Ulysses, Ring), tensor parallel, and multi-rank coordination.

One engine runs as one process per device under ``torchrun``; rank 0 serves gRPC
and hands every call to the other ranks (``lockstep.py``). Each family's split
is data (``plans.py``), applied with diffusers' context parallel and DTensor
(``parallelize.py``).
"""

from engine_service.parallel.config import ParallelConfig
from engine_service.parallel.plans import PLANS, ParallelPlan, plan_for

__all__ = ["PLANS", "ParallelConfig", "ParallelPlan", "plan_for"]
