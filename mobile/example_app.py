r"""What a mobile app does with an exported adjustable model, in Python with LiteRT.

The same steps as the Kotlin code in mobile/android/README.md, with the same names:

1. load the .tflite and its JSON sidecar (mobile/metadata.py);
2. build one slider per non-fixed coefficient from the sidecar;
3. map slider positions in [0, 1] to the raw coefficient vector ``loss_weights``
   (log scale for log-uniform coefficients) and check it BEFORE running;
4. fit the picture to the model's input size, run the signature ``stylize`` by input
   NAME (``image``, ``loss_weights``, ``style_index``);
5. turn the ``stylized`` output back into a picture.

    python -m mobile.example_app --tflite exported/style_int8.tflite --image in.jpg \
        --out out.png --slider style_block3=0.9 --slider content=0.2

Only NumPy, Pillow and ai_edge_litert are needed (no TensorFlow), like on a phone.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from absl import app, flags
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from mobile import metadata
from trainers import cli

# Input names of the exported signature (yoto_tf.layers.LAMBDA_INPUT etc.), spelled out: the
# app runs on LiteRT alone and must not import Keras.
IMAGE, LOSS_WEIGHTS, STYLE_INDEX = "image", "loss_weights", "style_index"


class AdjustableStylizer:
    """A .tflite style-transfer model whose loss weights are a live input.

    Args:
      tflite_path: the .tflite written by ``python -m mobile.convert`` (its ``.json``
        sidecar must lie next to it).
      num_threads: CPU threads of the interpreter.

    Raises:
      metadata.MetadataError: missing, unreadable or stale sidecar.
    """

    def __init__(self, tflite_path: str, num_threads: int = 2):
        with open(tflite_path, "rb") as f:
            tflite = f.read()
        self.metadata = metadata.read(tflite_path, tflite)
        self.interpreter = Interpreter(model_content=tflite, num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner(self.metadata["signature_key"])
        self.input_specs = {spec["name"]: spec for spec in self.metadata["inputs"]}
        self.output_name = self.metadata["outputs"][0]["name"]

    @property
    def sliders(self) -> list[dict]:
        """The coefficients an app shows a slider for (fixed ones have none)."""
        return [c for c in self.metadata["coefficients"] if c["slider"]["scale"] != "none"]

    @property
    def num_styles(self) -> int:
        return int(self.metadata["num_styles"])

    def loss_weights(self, positions: Mapping[str, float] | None = None) -> np.ndarray:
        """float32 [1, k] from slider positions in [0, 1] by coefficient name (others at
        their default)."""
        return metadata.loss_weights_from_sliders(self.metadata, positions or {})

    def fit_input(self, picture: np.ndarray) -> np.ndarray:
        """uint8 [H, W, 3] -> float32 [1, h, w, 3] in [0, 1] at the model's input size
        (a fixed-size model: its size; a dynamic one: H and W rounded down to its size
        multiple)."""
        picture = np.asarray(picture)
        if picture.ndim != 3 or picture.shape[-1] != 3 or picture.dtype != np.uint8:
            raise ValueError(
                f"Expected an RGB picture uint8 [H, W, 3], got {picture.dtype} {picture.shape}."
            )
        _, height, width, _ = self.input_specs[IMAGE]["shape"]
        if height == -1:
            multiple = int(self.input_specs[IMAGE].get("size_multiple", 1))
            height = max(multiple, picture.shape[0] // multiple * multiple)
            width = max(multiple, picture.shape[1] // multiple * multiple)
        resized = Image.fromarray(picture).resize((width, height), Image.BICUBIC)
        return (np.asarray(resized, np.float32) / 255.0)[None]

    def stylize(
        self, picture: np.ndarray, loss_weights=None, style_index: int = 0
    ) -> np.ndarray:
        """Runs the model; returns the stylized picture uint8 [h, w, 3].

        Args:
          picture: uint8 [H, W, 3].
          loss_weights: the raw coefficient vector ([k] or [1, k]); default: the defaults.
          style_index: which style, for multi-style models.

        Raises:
          metadata.MetadataError: wrong vector length or a value outside its range
            (checked before anything runs).
          ValueError: a bad picture or style index.
        """
        if loss_weights is None:
            loss_weights = self.loss_weights()
        feed = {LOSS_WEIGHTS: metadata.check_loss_weights(self.metadata, loss_weights)}
        if self.num_styles:
            if not 0 <= int(style_index) < self.num_styles:
                raise ValueError(
                    f"style_index {style_index} is outside [0, {self.num_styles - 1}]."
                )
            feed[STYLE_INDEX] = np.array([style_index], np.int32)
        elif style_index:
            raise ValueError("This model has a single style; style_index must be 0.")
        feed[IMAGE] = self.fit_input(picture)
        output = self.runner(**feed)[self.output_name]
        return np.clip(np.round(output[0] * 255.0), 0, 255).astype(np.uint8)


FLAGS = flags.FLAGS


def define_flags():
    """Defines the command-line flags (only when run as a program, so importing this
    module next to other absl programs defines no flags)."""
    flags.DEFINE_string("tflite", None, "The .tflite written by mobile.convert.")
    flags.DEFINE_string("image", None, "Input picture.")
    flags.DEFINE_string("out", "stylized.png", "Where to write the stylized picture.")
    flags.DEFINE_multi_string("slider", [], "NAME=POSITION, position in [0, 1] (log scale for "
                              "log-uniform coefficients); repeatable.")
    flags.DEFINE_list("loss_weights", None, "The raw coefficient vector instead of sliders.")
    flags.DEFINE_integer("style_index", 0, "Style of a multi-style model.")
    flags.DEFINE_integer("threads", 2, "Interpreter threads.")


def _positions(items) -> dict[str, float]:
    positions = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--slider {item!r}: expected NAME=POSITION.")
        positions[name] = float(value)
    return positions


def main(argv):
    del argv
    if not FLAGS.tflite or not FLAGS.image:
        raise app.UsageError("--tflite and --image are required.")
    try:
        stylizer = AdjustableStylizer(FLAGS.tflite, FLAGS.threads)
        for c in stylizer.sliders:
            print(f"slider {c['name']}: [{c['low']:g}, {c['high']:g}] ({c['slider']['scale']}),"
                  f" default {c['default']:g}")
        if FLAGS.loss_weights:
            lam = [float(v) for v in FLAGS.loss_weights]
        else:
            lam = stylizer.loss_weights(_positions(FLAGS.slider))
        picture = np.asarray(Image.open(FLAGS.image).convert("RGB"))
        result = stylizer.stylize(picture, lam, FLAGS.style_index)
    except (OSError, ValueError) as error:
        cli.fail("mobile.example_app", error)
    Image.fromarray(result).save(FLAGS.out)
    print(f"loss_weights {np.round(np.ravel(lam), 5).tolist()} -> {FLAGS.out}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
