"""Where a training run keeps its files under its model directory, for the trainers that
write them and the ones that resume from them. No TensorFlow and no flags here."""

from __future__ import annotations

import os

MODEL_FILE = "model.keras"
"""The trained network (also written at every checkpoint)."""
CHECKPOINT_DIR = "checkpoints"
"""The tf.train checkpoints (weights and optimizer state)."""


def resumable_model(model_dir) -> str | None:
    """``model_dir``'s model file when a run there has a checkpoint to resume from (and has
    written its model since), else None."""
    if not model_dir:
        return None
    path = os.path.join(model_dir, MODEL_FILE)
    has_checkpoint = os.path.exists(os.path.join(model_dir, CHECKPOINT_DIR, "checkpoint"))
    return path if has_checkpoint and os.path.exists(path) else None
