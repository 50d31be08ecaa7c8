r"""Ships a trained model inside the package (maintainers' tool).

  python -m trainers.ship_model --model runs/shipped_style/model.keras --name painters4

Writes ``yoto_tf/pretrained_models/<file>`` (the entry's file name in ``models.json``) with its
weights stored in float16 (the loaded model computes in float32) and records the file's sha256
in the manifest, which ``yoto_tf.pretrained`` checks before every load. The manifest entry
(styles with provenance, description, model card) is written by hand first.
"""

from __future__ import annotations


from absl import app, flags

from trainers import cli
from yoto_tf import pretrained

flags.DEFINE_string("model", None, "The trained .keras file.")
flags.DEFINE_string("name", None, "The manifest entry to ship it as.")
flags.DEFINE_integer("max_megabytes", None,
                     "Refuse a shipped file larger than this (default: 12 for compression models, 10 otherwise).")
flags.mark_flags_as_required(["model", "name"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        max_bytes = FLAGS.max_megabytes * 1_000_000 if FLAGS.max_megabytes else None
        print(pretrained.ship(FLAGS.model, FLAGS.name, max_bytes))
    except ValueError as error:
        cli.fail("ship_model", error)


if __name__ == "__main__":
    app.run(main)
