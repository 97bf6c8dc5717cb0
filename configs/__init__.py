"""Typed presets: model sizes by critic width (and, later, task suites)."""

from configs.models import MODEL_PRESETS, model_preset, parameter_counts

__all__ = ["MODEL_PRESETS", "model_preset", "parameter_counts"]
