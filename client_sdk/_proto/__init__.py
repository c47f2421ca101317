"""Generated protobuf and gRPC stubs for ditserve.v1 (see scripts/gen_protos.py)."""
