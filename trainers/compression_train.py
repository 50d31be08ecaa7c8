"""The ``train`` command of ``python -m trainers.compression``: its flags and the
:class:`trainers.core.TrainTask` they describe (model, data, optimizer, TensorBoard
summaries, and the real-coding RD summary written beside the exported model)."""

from __future__ import annotations

import os

import numpy as np
from absl import flags, logging

from trainers import cli, run_files
from yoto_tf import data, image_sources, pretrained
from yoto_tf.files import write_json_atomically
from yoto_tf.images import load_image
from yoto_tf.compression import codec as codec_lib
from yoto_tf.compression import image_coding
from yoto_tf.compression import metrics
from yoto_tf.compression import model as model_lib
from yoto_tf.compression import precision
from yoto_tf.compression import training as training_lib
from yoto_tf.compression import widening

FLAGS = flags.FLAGS

TRAIN_FLAGS = ("train_data", "patch_size", "lambda_range", "fixed_lambda", "num_filters",
               "num_latent", "conditioning_units", "clip_norm", "geometric_mean_weights",
               "learning_rate_drop_step", "learning_rate_drop_factor", "mean_scale",
               "mixed_quantization", "lambda_map_fraction", "init_from", "synthesis_filters",
               "channel_slices", "residual_prediction", "conv_compute_dtype")
"""The train command's own settings, recorded in train_config.json."""

ARCHITECTURE_FLAGS = ("lambda_range", "fixed_lambda", "num_filters", "num_latent", "conditioning_units",
                      "mean_scale", "mixed_quantization")
"""What a network fixes: not allowed beside --init_from."""

EVAL_BUCKETS = 4  # lambda buckets of the TensorBoard evaluation scalars


def define_flags() -> None:
    """Defines the train command's flags (and adopts the common training flags of
    ``trainers.core`` as key flags, so `train --help` lists --model_dir, --steps, ...)."""
    from trainers import core  # pylint: disable=import-outside-toplevel  # the common training flags

    flags.DEFINE_string("train_data", "builtin", "Training images: builtin | folder:GLOB | tfds:NAME[:SPLIT] (e.g. tfds:clic).")
    flags.DEFINE_string("tfds_data_dir", None, "TFDS data directory for --train_data=tfds:...")
    flags.DEFINE_integer("patch_size", 256, "Training patch side (a multiple of 64).", lower_bound=64)
    flags.DEFINE_string("lambda_range", "0.0018,0.18", "LO,HI: log-uniform range of the distortion weight lambda.")
    flags.DEFINE_float("fixed_lambda", None, "Train an ordinary single-lambda model at this lambda instead.")
    flags.DEFINE_integer("num_filters", 128, "N: channels of the hidden layers and of z.", lower_bound=1)
    flags.DEFINE_integer("num_latent", 192, "M: channels of the latent y.", lower_bound=1)
    flags.DEFINE_integer("conditioning_units", 256, "Width of the lambda-conditioning MLP.", lower_bound=1)
    flags.DEFINE_float("clip_norm", 1.0, "Global gradient-norm clipping (0 = off).", lower_bound=0.0)
    flags.DEFINE_bool("geometric_mean_weights", True,
                      "Divide each example's loss weights by their geometric mean sqrt(lambda), so "
                      "high-lambda examples do not dominate the gradient (see yoto_tf/compression/training.py).")
    flags.DEFINE_bool("mean_scale", False,
                      "Mean-scale hyperprior: predict a mean and a scale for every latent (Minnen et al. 2018).")
    flags.DEFINE_bool("mixed_quantization", False,
                      "Train the synthesis on rounded latents (straight-through) and the rate on noisy ones.")
    flags.DEFINE_float("lambda_map_fraction", 0.0,
                       "Share of the training examples conditioned on a random two-level lambda map, "
                       "their distortion weighted per pixel (for --quality_map coding; 0 = one lambda "
                       "per image).", lower_bound=0.0, upper_bound=1.0)
    flags.DEFINE_string("init_from", None,
                        "Start from this trained network (a model.keras, a run directory or a shipped "
                        "model's name): its architecture and lambda range are used, so do not also give "
                        f"{', '.join('--' + n for n in ARCHITECTURE_FLAGS)}. A run with checkpoints resumes "
                        "from them instead.")
    flags.DEFINE_integer("synthesis_filters", None,
                         "Channels of the synthesis transform's hidden layers (default: --num_filters). "
                         "With --init_from: widen that network's synthesis to this many channels, keeping "
                         "what it computes (yoto_tf/compression/widening.py), before training.",
                         lower_bound=1)
    flags.DEFINE_integer("channel_slices", None,
                         "Code the latent in this many slices with a channel context (Minnen & Singh "
                         "2020; needs --mean_scale; default 0: none). With --init_from: add one to that "
                         "network, starting from what it computes (yoto_tf/compression/widening.py).",
                         lower_bound=0)
    flags.DEFINE_bool("residual_prediction", False,
                      "Latent residual prediction after each slice (Minnen & Singh 2020; needs a channel "
                      "context). With --init_from: add it to that network, starting from what it computes "
                      "(yoto_tf/compression/widening.py).")
    flags.DEFINE_enum("conv_compute_dtype", "float32", list(precision.COMPUTE_DTYPES),
                      "Compute the convs between feature maps in bfloat16 (mixed precision: float32 "
                      "weights; training steps 1.5-1.7 times as fast on a 2-core CPU with AVX512_BF16) "
                      "or float32. A training setting only: the saved model computes in float32 "
                      "(yoto_tf/compression/precision.py).")
    flags.DEFINE_integer("learning_rate_drop_step", 0,
                         "From this step on, train at --learning_rate * --learning_rate_drop_factor (0 = never).",
                         lower_bound=0)
    flags.DEFINE_float("learning_rate_drop_factor", 0.1, "See --learning_rate_drop_step.", lower_bound=0.0)
    flags.register_validator("patch_size", lambda v: v % model_lib.PAD_MULTIPLE == 0,
                             message=f"--patch_size must be a multiple of {model_lib.PAD_MULTIPLE}.")
    flags.adopt_module_key_flags(core)



def make_task() -> core.TrainTask:
    """The TrainTask of the flags; checks the flags and the image source first.

    Raises:
      CommandError / ValueError: bad lambda flags, a malformed source, or a folder source
        that matches no image.
    """
    from trainers import core  # pylint: disable=import-outside-toplevel

    space = model_lib.compression_loss_space(cli.parse_range("--lambda_range", FLAGS.lambda_range), FLAGS.fixed_lambda)
    source = image_sources.parse_source(FLAGS.train_data)
    if not isinstance(source, image_sources.TfdsSource):
        image_sources.list_image_paths(source)

    init_path, initial_network = _initial_network() or (None, None)
    if init_path is None:
        try:
            model_lib.check_channel_slices(FLAGS.channel_slices or 0, FLAGS.mean_scale, FLAGS.num_latent)
        except ValueError as err:
            raise cli.CommandError(f"--channel_slices: {err}") from None
        try:
            model_lib.check_residual_prediction(FLAGS.residual_prediction, FLAGS.channel_slices or 0)
        except ValueError as err:
            raise cli.CommandError(f"--residual_prediction: {err}") from None

    def build_model():
        if init_path is not None:
            network = widening.grow(pretrained.load_network(init_path), FLAGS.synthesis_filters,
                                    FLAGS.channel_slices, FLAGS.residual_prediction)
            logging.info("Starting from %s (N/M %d/%d, synthesis %d, mean_scale %s, channel slices %d, "
                         "residual prediction %s, lambda range %s).", init_path, network.num_filters,
                         network.num_latent, network.synthesis_filters, network.mean_scale,
                         network.channel_slices, network.residual_prediction,
                         network.loss_space.coefficient("distortion"))
            model = training_lib.CompressionTrainingModel(
                network, seed=FLAGS.seed, geometric_mean_weights=FLAGS.geometric_mean_weights,
                lambda_map_fraction=FLAGS.lambda_map_fraction)
        else:
            model = training_lib.build_model(space, FLAGS.num_filters, FLAGS.num_latent, FLAGS.conditioning_units,
                                             seed=FLAGS.seed,
                                             geometric_mean_weights=FLAGS.geometric_mean_weights,
                                             mean_scale=FLAGS.mean_scale,
                                             mixed_quantization=FLAGS.mixed_quantization,
                                             lambda_map_fraction=FLAGS.lambda_map_fraction,
                                             synthesis_filters=FLAGS.synthesis_filters,
                                             channel_slices=FLAGS.channel_slices or 0,
                                             residual_prediction=FLAGS.residual_prediction)
        precision.set_conv_compute_dtype(model.network, FLAGS.conv_compute_dtype)
        warning = precision.emulation_warning(FLAGS.conv_compute_dtype)
        if warning:
            logging.warning("--%s", warning)
        return model

    def make_dataset(batch_size, seed):
        return data.image_dataset(FLAGS.train_data, FLAGS.patch_size, batch_size, seed=seed,
                                  tfds_data_dir=FLAGS.tfds_data_dir)

    def optimizer(learning_rate):
        import keras  # pylint: disable=import-outside-toplevel

        clip = FLAGS.clip_norm or None
        if FLAGS.learning_rate_drop_step:
            learning_rate = keras.optimizers.schedules.PiecewiseConstantDecay(
                [FLAGS.learning_rate_drop_step],
                [learning_rate, learning_rate * FLAGS.learning_rate_drop_factor])
        return keras.optimizers.Adam(learning_rate, global_clipnorm=clip)

    eval_batch = []  # drawn at the first summary (the strategy must be set up first)

    def summaries(network, step):
        del step
        if not eval_batch:
            eval_batch.append(next(iter(make_dataset(min(FLAGS.batch_size, 4), FLAGS.seed + 12345))))
        with precision.computing_in_float32(network):  # the figures of the model that ships
            return evaluation_summaries(network, eval_batch[0], network.loss_space)

    return core.TrainTask(
        build_model, make_dataset, export=export_rd_summary, optimizer=optimizer,
        summaries=summaries, name="compression",
        settings={**core.flag_values(TRAIN_FLAGS),
                  **(_architecture_settings(initial_network) if initial_network else {})},
    )


def _architecture_settings(network) -> dict:
    """The architecture flags' values that ``network`` (the --init_from one) fixes, for
    train_config.json: with --init_from those flags are not given and their defaults mean
    nothing."""
    distortion = network.loss_space.coefficient("distortion")
    fixed = distortion.distribution == "fixed"
    return {
        "lambda_range": None if fixed else f"{distortion.low:g},{distortion.high:g}",
        "fixed_lambda": distortion.low if fixed else None,
        "num_filters": network.num_filters,
        "num_latent": network.num_latent,
        "conditioning_units": network.conditioning_units,
        "mean_scale": network.mean_scale,
        "mixed_quantization": network.mixed_quantization,
        "synthesis_filters": FLAGS.synthesis_filters or network.synthesis_filters,  # never narrower
        "channel_slices": FLAGS.channel_slices or network.channel_slices,
        "residual_prediction": FLAGS.residual_prediction or network.residual_prediction,
    }


def _initial_network():
    """``(path, network)`` of --init_from's verified file (None if unset); checks that no
    architecture flag is given beside it, that it is a compression model, and that it can
    grow to --synthesis_filters, --channel_slices and --residual_prediction."""
    try:
        loaded = cli.load_initial_network(FLAGS, ARCHITECTURE_FLAGS,
                                          resume_model=run_files.resumable_model(FLAGS.model_dir),
                                          network_class=model_lib.CompressionNetwork)
    except ValueError as err:
        raise cli.CommandError(str(err)) from None
    if loaded is not None:
        try:
            widening.check_growth(loaded[1], FLAGS.synthesis_filters, FLAGS.channel_slices,
                                  FLAGS.residual_prediction)
        except ValueError as err:
            raise cli.CommandError(f"--init_from {loaded[0]}: {err}") from None
    return loaded


def evaluation_summaries(network, batch, space):
    """Per-lambda-bucket scalars (estimated bpp, PSNR, loss) of a fixed batch, and its
    reconstructions at the lowest and highest lambda, as a ``core.Summaries``."""
    from trainers import core  # pylint: disable=import-outside-toplevel

    coef = space.coefficient("distortion")
    lams = np.geomspace(coef.low, coef.high, EVAL_BUCKETS) if coef.low < coef.high else [coef.low]
    scalars, images = {}, {}
    x = np.asarray(batch, np.float32)
    pixels = x.shape[1] * x.shape[2]
    for i, lam in enumerate(lams):
        lam_vec = space.make(len(x), distortion=lam)
        out = network((x, lam_vec), training=False)
        x_hat = np.clip(np.asarray(out["x_hat"]), 0.0, 1.0)
        mse = np.mean((x - x_hat) ** 2, axis=(1, 2, 3))
        bpp = (np.asarray(out["y_bits"]) + np.asarray(out["z_bits"])) / pixels
        psnrs = [metrics.psnr(image, decoded, data_range=1.0) for image, decoded in zip(x, x_hat)]
        tag = f"lambda_{lam:.4g}"
        scalars[f"eval/bpp/{tag}"] = float(bpp.mean())
        scalars[f"eval/psnr/{tag}"] = float(np.mean(psnrs))
        scalars[f"eval/loss/{tag}"] = float(np.mean(lam * model_lib.DISTORTION_SCALE * mse + bpp))
        if i in (0, len(lams) - 1):
            images[f"reconstruction/{tag}"] = x_hat
    images["original"] = x
    return core.Summaries(scalars, images)


def export_rd_summary(network, model_dir):
    """Codes one built-in photo at 5 lambdas for real and writes ``rd_summary.json``."""
    codec = codec_lib.CompressionCodec(network)
    photo = image_sources.builtin_image_paths()[0]
    image = load_image(photo)
    low, high = codec.lambda_range
    rows = []
    for lam in np.geomspace(low, high, 5) if low < high else [low]:
        payload = image_coding.compress_image(codec, image, float(lam))
        decoded = image_coding.decompress_image(codec, payload)
        rows.append({
            "lambda": float(lam),
            "bpp": len(payload) * 8 / (image.shape[0] * image.shape[1]),
            "estimated_bpp": image_coding.estimate_bpp(codec, image, float(lam)),
            "psnr": metrics.psnr(image, decoded),
        })
        logging.info("RD %s: lambda %.4g  %.3f bpp (estimated %.3f)  %.2f dB", os.path.basename(photo),
                     rows[-1]["lambda"], rows[-1]["bpp"], rows[-1]["estimated_bpp"], rows[-1]["psnr"])
    write_json_atomically(os.path.join(model_dir, "rd_summary.json"), {"image": photo, "points": rows})
