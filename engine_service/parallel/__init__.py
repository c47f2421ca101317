"""Parallelism: context parallel (Ulysses, Ring), tensor parallel, and the ranks' transport.

One engine runs as one process per device under ``torchrun``; rank 0 serves gRPC
and hands every call to the other ranks over the transport of ``lockstep.py``
(the runtime's executor decides what each rank runs; nothing here imports the runtime). Each family's split
is data (``plans.py``), applied with diffusers' context parallel and DTensor
(``parallelize.py``).
"""

from engine_service.parallel.config import ParallelConfig
from engine_service.parallel.plans import PLANS, ParallelPlan, plan_for

__all__ = ["PLANS", "ParallelConfig", "ParallelPlan", "plan_for"]
