"""gRPC front of the engine: validation, proto translation, status mapping, health, reflection."""
