"""Exporting models for other tools: a model folder (config.json, model.safetensors, a
model card) today; each format is one module here and one entry of ``sdflow export``."""

from sdflow.export.folder import export_folder, model_card

__all__ = ["export_folder", "model_card"]
