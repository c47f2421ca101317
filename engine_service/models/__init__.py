"""Model registry: what each diffusers family needs (as data), and how models are loaded."""

from engine_service.models.registry import (
    FAMILIES,
    FamilySpec,
    LoadedModel,
    ModelLoadError,
    apply_model_speed,
    family_for_pipeline,
    load_builtin_default,
    load_local_model,
    model_from_pipeline,
)

__all__ = [
    "FAMILIES",
    "FamilySpec",
    "LoadedModel",
    "ModelLoadError",
    "apply_model_speed",
    "family_for_pipeline",
    "load_builtin_default",
    "load_local_model",
    "model_from_pipeline",
]
