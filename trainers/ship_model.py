r"""Ships a trained model inside the package (maintainers' tool).

  python -m trainers.ship_model --model runs/shipped_style/model.keras --name painters4

Writes ``yoto_tf/pretrained_models/<file>`` (the entry's file name in ``models.json``) with its
weights stored in float16 (the loaded model computes in float32) and records the file's sha256
in the manifest, which ``yoto_tf.pretrained`` checks before every load. The manifest entry
(styles with provenance, description, model card) is written by hand first.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from yoto_tf import pretrained
from yoto_tf.files import sha256_of, write_atomically
from yoto_tf.model_files import write_float16_copy

flags.DEFINE_string("model", None, "The trained .keras file.")
flags.DEFINE_string("name", None, "The manifest entry to ship it as.")
flags.DEFINE_integer("max_megabytes", 10, "Refuse a shipped file larger than this.")
flags.mark_flags_as_required(["model", "name"])
FLAGS = flags.FLAGS


def ship(model_path: str, name: str, max_bytes: int) -> str:
    """Writes the float16 copy and its sha256; returns a one-line summary."""
    entry = pretrained.get_model(name)
    write_float16_copy(model_path, entry.path)
    size = os.path.getsize(entry.path)
    if size > max_bytes:
        os.remove(entry.path)
        raise ValueError(f"{entry.path}: {size / 1e6:.1f} MB exceeds {max_bytes / 1e6:.0f} MB.")
    with open(pretrained.MANIFEST) as f:
        manifest = json.load(f)
    sha = sha256_of(entry.path)
    for item in manifest["models"]:
        if item["name"] == name:
            item["sha256"] = sha
    write_atomically(pretrained.MANIFEST, lambda tmp: _dump(manifest, tmp))
    return f"Shipped {model_path} as {entry.path} ({size / 1e6:.2f} MB, sha256 {sha})."


def _dump(manifest: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def main(argv):
    del argv
    try:
        print(ship(FLAGS.model, FLAGS.name, FLAGS.max_megabytes * 1_000_000))
    except ValueError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    app.run(main)
