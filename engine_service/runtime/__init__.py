"""Runtime: the job queue, the worker that runs pipelines on the device, output encoding, stats.

Nothing here imports grpc: the server translates protos to ``JobSpec`` and the
runtime's events back to protos.
"""
