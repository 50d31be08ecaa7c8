r"""A compression training step with bfloat16 feature convs vs float32, measured in one run.

  python -m benchmarks.bfloat16_training --images ../shared/data/kodak [--model mean_scale_64_s192_53k
      --patch_size 256 --batch_size 8 --repeats 4 --steps 3]

Two training models of the same shipped (or given) network, one computing its feature convs
in bfloat16 (``train --conv_compute_dtype bfloat16``, ``yoto_tf/compression/precision.py``),
train on the same crops of ``--images`` (one lambda per crop, spread over the model's range),
in turn (A B, then B A, ...) so machine noise hits both alike. Printed: the median seconds
per step of each and their ratio, in wall-clock time and in this process's CPU time (the
latter does not count time lost to other processes); and, on one batch with the same lambdas and the same
quantization noise, the relative difference of the losses, the cosine between the two
gradients (all weights) and the lowest cosine of any weight's gradient (what bfloat16 costs
the optimizer). The learning rate is tiny, so the timed steps barely move the weights.
"""

import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from trainers import cli
from yoto_tf import pretrained
from yoto_tf.compression import precision
from yoto_tf.compression.training import CompressionTrainingModel
from yoto_tf.data import eval_images

flags.DEFINE_string("images", None, "A directory of photos to crop (e.g. Kodak or BSDS500).")
flags.DEFINE_string("model", None, "A shipped compression model's name or a model.keras "
                    "(default: the shipped default).")
flags.DEFINE_integer("patch_size", 256, "Crop side.", lower_bound=64)
flags.DEFINE_integer("batch_size", 8, "Crops per step (the first N images, centre crops).", lower_bound=1)
flags.DEFINE_integer("repeats", 4, "Timed rounds (each times both settings).", lower_bound=1)
flags.DEFINE_integer("steps", 3, "Steps per timed round.", lower_bound=1)
flags.mark_flag_as_required("images")
FLAGS = flags.FLAGS


def _centre_crops(images, size):
    crops = []
    for name, image in images:
        height, width = image.shape[:2]
        if min(height, width) < size:
            raise ValueError(f"{name} is {width}x{height}, smaller than --patch_size {size}")
        top, left = (height - size) // 2, (width - size) // 2
        crops.append(image[top:top + size, left:left + size])
    return np.stack(crops).astype(np.float32) / 255.0


def _model_name():
    return FLAGS.model or pretrained.default_model("compression").name


def _training_model(compute_dtype):
    network = pretrained.load_network(_model_name())
    precision.set_conv_compute_dtype(network, compute_dtype)
    model = CompressionTrainingModel(network, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-9))
    return model


def _loss_and_gradients(model, batch):
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=batch, y_pred=model(batch, training=True), training=True)
    return float(loss), tape.gradient(loss, model.network.trainable_variables)


def _cosine(a, b):
    a, b = tf.cast(tf.reshape(a, [-1]), tf.float32), tf.cast(tf.reshape(b, [-1]), tf.float32)
    return float(tf.reduce_sum(a * b) / (tf.norm(a) * tf.norm(b) + 1e-30))


def main(argv):
    del argv
    try:
        crops = _centre_crops(eval_images(FLAGS.images, max_images=FLAGS.batch_size), FLAGS.patch_size)
        models = {dtype: _training_model(dtype) for dtype in precision.COMPUTE_DTYPES}
    except (OSError, ValueError) as error:
        cli.fail("bfloat16_training", error)
    space = models["float32"].loss_space
    low, high = space.coefficient("distortion").low, space.coefficient("distortion").high
    lam = np.stack([space.make(1, distortion=v)[0] for v in np.geomspace(low, high, len(crops))]).astype(np.float32)
    batch = {"inputs": crops, "lambda": lam}

    losses, gradients = {}, {}
    for dtype, model in models.items():  # fresh networks: the same quantization noise
        losses[dtype], gradients[dtype] = _loss_and_gradients(model, batch)
    names = [v.path for v in models["float32"].network.trainable_variables]
    pairs = [(n, a, b) for n, a, b in zip(names, gradients["float32"], gradients["bfloat16"]) if a is not None]
    overall = _cosine(tf.concat([tf.reshape(a, [-1]) for _, a, _ in pairs], 0),
                      tf.concat([tf.reshape(tf.cast(b, tf.float32), [-1]) for _, _, b in pairs], 0))
    worst = min((_cosine(a, b), n) for n, a, b in pairs)

    data = tf.data.Dataset.from_tensors(crops).repeat()
    for model in models.values():  # trace, untimed
        model.fit(data, steps_per_epoch=1, verbose=0)
    seconds = {dtype: [] for dtype in models}
    cpu_seconds = {dtype: [] for dtype in models}
    for round_index in range(FLAGS.repeats):
        order = precision.COMPUTE_DTYPES if round_index % 2 == 0 else precision.COMPUTE_DTYPES[::-1]
        for dtype in order:
            start, cpu_start = time.perf_counter(), time.process_time()
            models[dtype].fit(data, steps_per_epoch=FLAGS.steps, verbose=0)
            seconds[dtype].append((time.perf_counter() - start) / FLAGS.steps)
            cpu_seconds[dtype].append((time.process_time() - cpu_start) / FLAGS.steps)
    median = {dtype: float(np.median(values)) for dtype, values in seconds.items()}
    cpu_median = {dtype: float(np.median(values)) for dtype, values in cpu_seconds.items()}
    print(f"{_model_name()}, batch {len(crops)} x {FLAGS.patch_size}^2 crops of {FLAGS.images}, "
          f"{FLAGS.repeats} x {FLAGS.steps} steps each")
    for dtype in models:
        print(f"  {dtype:9s} {median[dtype]:.3f} s/step ({', '.join(f'{v:.2f}' for v in seconds[dtype])}), "
              f"CPU {cpu_median[dtype]:.2f} s/step")
    print(f"  ratio bfloat16 / float32: {median['bfloat16'] / median['float32']:.3f} wall-clock, "
          f"{cpu_median['bfloat16'] / cpu_median['float32']:.3f} CPU time")
    print(f"  one batch: loss {losses['float32']:.4f} vs {losses['bfloat16']:.4f} "
          f"(relative {abs(losses['bfloat16'] - losses['float32']) / abs(losses['float32']):.1e}); "
          f"gradient cosine {overall:.4f}, lowest per weight {worst[0]:.3f} ({worst[1]})")


if __name__ == "__main__":
    app.run(main)
