r"""Variable-rate learned image compression: train, compress, decompress.

  # Train one model for the whole lambda range (offline default data: scikit-image photos)
  python -m trainers.compression train --model_dir runs/compression \
      --train_data=folder:'/data/photos/*.jpg' --patch_size 256 --batch_size 8 --steps 100000
  # The same code as an ordinary single-rate model, for comparison
  python -m trainers.compression train --model_dir runs/fixed_0.013 --fixed_lambda 0.013
  # Fine-tune the shipped model with random lambda maps (for --quality_map coding)
  python -m trainers.compression train --model_dir runs/maps --init_from mean_scale_64 \
      --lambda_map_fraction 0.5 --steps 2000 --learning_rate 1e-4

  python -m trainers.compression compress --model runs/compression/model.keras \
      --input photo.png --lambda 0.01 --out photo.yotc
  python -m trainers.compression compress --input photo.png --out F   # shipped model, its default lambda
  python -m trainers.compression compress --model M --input photo.png --target_bpp 0.5 --out F
  # A quality map: white = the model's highest lambda (best quality), black = its lowest
  python -m trainers.compression compress --model M --input photo.png --quality_map roi.png --out F
  python -m trainers.compression decompress --model M --input photo.yotc --out photo.png

lambda is the weight of the distortion ``255^2 * MSE`` against bits per pixel (CompressAI's
scale): larger lambda, higher quality, more bits. Reported bpp = file size * 8 / pixels.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from absl import app, flags, logging

from trainers import cli
from yoto_tf import data, pretrained
from yoto_tf.files import write_bytes_atomically, write_json_atomically
from yoto_tf.images import ImageReadError, load_image, load_image_with_note, save_image
from yoto_tf.compression import codec as codec_lib
from yoto_tf.compression import metrics, quality_map
from yoto_tf.compression import model as model_lib
from yoto_tf.compression import precision
from yoto_tf.compression import rate_control
from yoto_tf.compression import training as training_lib
from yoto_tf.compression import widening

FLAGS = flags.FLAGS

SUBCOMMANDS = ("train", "compress", "decompress")

TRAIN_FLAGS = ("train_data", "patch_size", "lambda_range", "fixed_lambda", "num_filters",
               "num_latent", "conditioning_units", "clip_norm", "geometric_mean_weights",
               "learning_rate_drop_step", "learning_rate_drop_factor", "mean_scale",
               "mixed_quantization", "lambda_map_fraction", "init_from", "synthesis_filters",
               "conv_compute_dtype")
"""The train command's own settings, recorded in train_config.json."""

ARCHITECTURE_FLAGS = ("lambda_range", "fixed_lambda", "num_filters", "num_latent", "conditioning_units",
                      "mean_scale", "mixed_quantization")
"""What a network fixes: not allowed beside --init_from."""

CODING_FLAGS = {
    "compress": ("model", "input", "out", "lambda", "target_bpp", "target_bytes", "quality_map",
                 "quality_map_range", "quality_map_cell", "refine_steps"),
    "decompress": ("model", "input", "out"),
}
"""The flags of the compress and decompress commands."""


def _define_train_flags() -> None:
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
    flags.adopt_module_key_flags(core)  # `train --help` lists --model_dir, --steps, ...


def _define_coding_flags(command: str) -> None:
    flags.DEFINE_string("model", None, f"{command}: a trained model.keras or a shipped model's name "
                        + ("(default: the shipped model that wrote the file, found by its fingerprint)."
                           if command == "decompress" else "(default: the shipped compression model)."))
    if command == "compress":
        flags.DEFINE_string("input", None, "Image file to compress.")
        flags.DEFINE_string("out", None, "Compressed file to write.")
        _define_compress_options()
    else:
        flags.DEFINE_string("input", None, "Compressed file to decode.")
        flags.DEFINE_string("out", None, "Image (.png) to write.")


def define_flags(command: str | None = None) -> None:
    """Defines the flags of ``command`` (train, compress or decompress).

    Each command has only its own flags, so ``COMMAND --help`` lists them and a flag of
    another command is refused. ``command=None`` defines the flags of all three (for code and
    tests that set flags and call :func:`main`; the flag names do not overlap). Idempotent.
    """
    for name in SUBCOMMANDS if command is None else (command,):
        if name == "train":
            if "patch_size" not in FLAGS:
                _define_train_flags()
        elif "model" not in FLAGS:
            _define_coding_flags(name)
        elif name == "compress" and "lambda" not in FLAGS:  # decompress's flags came first
            _define_compress_options()


def _define_compress_options() -> None:
    """compress's quality options: at most one of --lambda, --target_bpp, --target_bytes and
    --quality_map, and --refine_steps."""
    flags.DEFINE_float("lambda", None, "Distortion weight (within the model's trained range; default: "
                       "the model's default lambda when no --target_bpp, --target_bytes or --quality_map).")
    flags.DEFINE_float("target_bpp", None, "Search lambda for this many bits per pixel (real file size).")
    flags.DEFINE_integer("target_bytes", None, "Search lambda for a file of this many bytes.")
    _define_quality_map_flags()
    _define_refine_flag()


def _define_refine_flag() -> None:
    flags.DEFINE_integer("refine_steps", 0,
                         "Refine the latents for this image with N gradient steps before coding: a "
                         "smaller file at the same quality, read by the same decoder (100 steps: about "
                         "8 % fewer bits on Kodak, about 16 s per 768x512 image on 2 cores instead of "
                         "0.15 s). --target_bpp/--target_bytes search on plain files, then refine at "
                         "most 4 times. 0 = off.",
                         lower_bound=0)


def _define_quality_map_flags() -> None:
    flags.DEFINE_string("quality_map", None,
                        "Grayscale image: a lambda per region (black = the low end of "
                        "--quality_map_range, white = the high end, log-interpolated; resized to the "
                        "input). Stored in the file.")
    flags.DEFINE_string("quality_map_range", None,
                        "LO,HI lambdas of black and white in --quality_map (default: the model's range).")
    flags.DEFINE_enum("quality_map_cell", str(quality_map.DEFAULT_CELL), [str(c) for c in quality_map.CELLS],
                      "Pixels per side of a stored map cell (16: one value per latent).")



EVAL_BUCKETS = 4  # lambda buckets of the TensorBoard evaluation scalars


class CommandError(Exception):
    """A user-facing error: printed without a traceback, exit status 1."""


# ------------------------------------------------------------------------------- train
def make_task() -> core.TrainTask:
    """The TrainTask of the flags; checks the flags and the image source first.

    Raises:
      CommandError / ValueError: bad lambda flags, a malformed source, or a folder source
        that matches no image.
    """
    from trainers import core  # pylint: disable=import-outside-toplevel

    space = model_lib.compression_loss_space(cli.parse_range("--lambda_range", FLAGS.lambda_range), FLAGS.fixed_lambda)
    source = data.parse_source(FLAGS.train_data)
    if not isinstance(source, data.TfdsSource):
        data.list_image_paths(source)

    init_path, initial_network = _initial_network() or (None, None)

    def build_model():
        if init_path is not None:
            network = _widened(pretrained.load_network(init_path))
            logging.info("Starting from %s (N/M %d/%d, synthesis %d, mean_scale %s, lambda range %s).",
                         init_path, network.num_filters, network.num_latent, network.synthesis_filters,
                         network.mean_scale, network.loss_space.coefficient("distortion"))
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
                                             synthesis_filters=FLAGS.synthesis_filters)
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
    }


def _widened(network):
    """``network`` with its synthesis widened to --synthesis_filters (unchanged if unset;
    the width was checked by :func:`_initial_network`)."""
    if FLAGS.synthesis_filters is None or FLAGS.synthesis_filters == network.synthesis_filters:
        return network
    return widening.widen_synthesis(network, FLAGS.synthesis_filters)


def _initial_network():
    """``(path, network)`` of --init_from's verified file (None if unset); checks that no
    architecture flag is given beside it and that it is a compression model."""
    try:
        loaded = cli.load_initial_network(FLAGS, ARCHITECTURE_FLAGS)
    except ValueError as err:
        raise CommandError(str(err)) from None
    if loaded is None:
        return None
    path, network = loaded
    if not isinstance(network, model_lib.CompressionNetwork):
        raise CommandError(f"--init_from: {path} holds a {type(network).__name__}, not a compression model")
    if FLAGS.synthesis_filters is not None and FLAGS.synthesis_filters < network.synthesis_filters:
        raise CommandError(f"--synthesis_filters: the synthesis of {path} has {network.synthesis_filters} "
                           f"channels and can only be widened, not narrowed to {FLAGS.synthesis_filters}")
    return path, network


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
    image = load_image(data.builtin_image_paths()[0])
    low, high = codec.lambda_range
    rows = []
    for lam in np.geomspace(low, high, 5) if low < high else [low]:
        payload = codec_lib.compress_image(codec, image, float(lam))
        decoded = codec_lib.decompress_image(codec, payload)
        rows.append({
            "lambda": float(lam),
            "bpp": len(payload) * 8 / (image.shape[0] * image.shape[1]),
            "estimated_bpp": codec_lib.estimate_bpp(codec, image, float(lam)),
            "psnr": metrics.psnr(image, decoded),
        })
        logging.info("RD %s: lambda %.4g  %.3f bpp (estimated %.3f)  %.2f dB", os.path.basename(
            data.builtin_image_paths()[0]), rows[-1]["lambda"], rows[-1]["bpp"],
            rows[-1]["estimated_bpp"], rows[-1]["psnr"])
    write_json_atomically(os.path.join(model_dir, "rd_summary.json"),
                          {"image": data.builtin_image_paths()[0], "points": rows})


# ------------------------------------------------------------------------------- coding
def _require(command, *names):
    missing = [f"--{n}" for n in names if getattr(FLAGS, n) is None]
    if missing:
        raise CommandError(f"{command} needs {', '.join(missing)}")


def _load_codec():
    """The codec of --model: a file, a shipped model's name, or (unset) the shipped default."""
    try:
        if FLAGS.model is None:
            path = pretrained.verify(pretrained.default_model("compression"))
        else:
            path = pretrained.resolve_model_path(FLAGS.model)
        return codec_lib.load_compression_model(path)
    except (OSError, ValueError) as err:
        raise CommandError(str(err)) from None


def compress() -> None:
    _require("compress", "input", "out")
    chosen = [n for n in ("lambda", "target_bpp", "target_bytes", "quality_map")
              if getattr(FLAGS, n) is not None]
    if len(chosen) > 1:
        raise CommandError("compress takes at most one of --lambda, --target_bpp, --target_bytes, "
                           f"--quality_map (got {', '.join('--' + n for n in chosen)})")
    chosen = chosen or ["lambda"]
    if FLAGS.quality_map_range is not None and chosen[0] != "quality_map":
        raise CommandError("--quality_map_range needs --quality_map")
    try:
        image, note = load_image_with_note(FLAGS.input)
    except ImageReadError as err:
        raise CommandError(str(err)) from None
    if note:
        print(f"note: {FLAGS.input}: converted {note}")
    codec = _load_codec()
    height, width = image.shape[:2]
    start = time.perf_counter()
    try:
        result = None
        if chosen[0] == "lambda":
            lam = getattr(FLAGS, "lambda")  # `lambda` is a Python keyword
            if lam is None:
                lam = codec.default_lambda
                print(f"note: no --lambda, --target_bpp, --target_bytes or --quality_map: "
                      f"using the model's default lambda {lam:g} (range {codec.lambda_range[0]:g}-"
                      f"{codec.lambda_range[1]:g}; larger = higher quality)")
            payload = codec_lib.compress_image(codec, image, lam, refine_steps=FLAGS.refine_steps)
        elif chosen[0] == "quality_map":
            lambda_map = _read_quality_map(codec, image.shape[:2])
            payload = codec_lib.compress_image(codec, image, lambda_map=lambda_map,
                                               map_cell=int(FLAGS.quality_map_cell),
                                               refine_steps=FLAGS.refine_steps)
            lam = float(np.exp(np.log(lambda_map).mean()))
        else:
            target = (FLAGS.target_bytes if chosen[0] == "target_bytes"
                      else rate_control.target_bytes_for_bpp(FLAGS.target_bpp, height, width))
            result = rate_control.compress_to_target(codec, image, float(target),
                                                     refine_steps=FLAGS.refine_steps)
            payload, lam = result.data, result.lam
    except ValueError as err:
        raise CommandError(str(err)) from None
    seconds = time.perf_counter() - start
    _write_bytes(FLAGS.out, payload)
    bpp = len(payload) * 8 / (height * width)
    what = "lambda" if chosen[0] != "quality_map" else "quality map, geometric-mean lambda"
    print(f"wrote {FLAGS.out}: {len(payload)} bytes, {bpp:.4f} bpp, {width}x{height}, "
          f"{what} {lam:.6g}, {seconds:.2f} s")
    if result is not None:
        status = "met" if result.met else f"NOT met ({result.reason})"
        print(f"target {result.target_bytes:.0f} bytes: {status}; {len(payload)} bytes "
              f"({100 * result.relative_error:+.2f} %) after {result.tries} tries")


def _read_quality_map(codec, size: tuple[int, int]) -> np.ndarray:
    """The --quality_map image as lambdas [H, W] at the input's size (checked)."""
    low, high = codec.lambda_range
    if FLAGS.quality_map_range is not None:
        try:
            low, high = cli.parse_range("--quality_map_range", FLAGS.quality_map_range, allow_equal=True)
        except ValueError as err:
            raise CommandError(str(err)) from None
        allowed = codec.lambda_range
        if low < allowed[0] * (1 - 1e-6) or high > allowed[1] * (1 + 1e-6):
            raise CommandError(f"--quality_map_range {low:g},{high:g} leaves the model's trained "
                               f"lambda range [{allowed[0]:g}, {allowed[1]:g}]")
    try:
        gray = load_image(FLAGS.quality_map).astype(np.float64).mean(axis=-1)
    except ImageReadError as err:
        raise CommandError(f"--quality_map: {err}") from None
    if gray.shape != tuple(size):
        print(f"note: quality map {FLAGS.quality_map} is {gray.shape[1]}x{gray.shape[0]}; "
              f"resized to the input's {size[1]}x{size[0]}")
        gray = quality_map.resize_map(gray, *size)
    return quality_map.lambdas_from_gray(gray / 255.0, low, high)


def decompress() -> None:
    _require("decompress", "input", "out")
    try:
        with open(FLAGS.input, "rb") as f:
            payload = f.read()
    except OSError as err:
        raise CommandError(f"cannot read {FLAGS.input}: {err.strerror}") from None
    if FLAGS.model is None:  # the shipped model that wrote the file
        try:
            shipped, codec = codec_lib.shipped_model_for(payload)
        except (OSError, ValueError) as err:
            raise CommandError(f"cannot decode {FLAGS.input}: {err}") from None
        model_name = shipped.name
    else:
        codec = _load_codec()
        model_name = FLAGS.model
    start = time.perf_counter()
    try:
        image = codec_lib.decompress_image(codec, payload)
    except ValueError as err:
        raise CommandError(f"cannot decode {FLAGS.input}: {err}") from None
    seconds = time.perf_counter() - start
    try:
        save_image(FLAGS.out, image)
    except (OSError, ValueError) as err:
        raise CommandError(f"cannot write {FLAGS.out}: {err}") from None
    print(f"wrote {FLAGS.out}: {image.shape[1]}x{image.shape[0]}, {seconds:.2f} s, decoded with {model_name}")


def _write_bytes(path: str, payload: bytes) -> None:
    """Writes the file atomically: an interrupted run leaves the old file (or none), never a
    truncated one that would fail to decode later."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_bytes_atomically(path, payload)
    except OSError as err:
        raise CommandError(f"cannot write {path}: {err.strerror}") from None


# ------------------------------------------------------------------------------- main
def main(argv):
    if len(argv) != 2 or argv[1] not in SUBCOMMANDS:
        raise app.UsageError(f"usage: python -m trainers.compression {{{'|'.join(SUBCOMMANDS)}}} --flags")
    try:
        if argv[1] == "train":
            try:
                task = make_task()
            except ValueError as err:
                raise CommandError(str(err)) from None
            from trainers import core  # pylint: disable=import-outside-toplevel

            core.train_from_flags(task)
        elif argv[1] == "compress":
            compress()
        else:
            decompress()
    except CommandError as err:
        cli.fail(f"compression {argv[1]}", err)


def _parse_flags(argv):
    """absl's flag parsing, with a clear message for a flag of another command."""
    command = argv[1]
    try:
        return FLAGS(argv)
    except flags.UnrecognizedFlagError as err:
        owners = [c for c in SUBCOMMANDS if c != command and _command_has_flag(c, err.flagname)]
        if not owners:
            message = str(err)
        else:
            message = (f"--{err.flagname} is a flag of `{'/'.join(owners)}`, not of `{command}` "
                           f"(see: python -m trainers.compression {command} --help)")
    except flags.Error as err:
        message = str(err)
    cli.fail(f"compression {command}", message)


def _command_has_flag(command: str, name: str) -> bool:
    if command == "train":
        from trainers import core  # pylint: disable=import-outside-toplevel

        common = {flag.name for flag in FLAGS.get_flags_for_module(core.__name__)}
        return name in TRAIN_FLAGS or name in ("tfds_data_dir", *common) or name.startswith("no") and (
            name[2:] in TRAIN_FLAGS)
    return name in CODING_FLAGS[command]


def cli_main(argv=None) -> None:
    """Entry point (``python -m trainers.compression``, ``yoto-compression``): defines the
    flags of the command named first, then runs the absl app."""
    argv = list(sys.argv if argv is None else argv)
    usage = f"usage: python -m trainers.compression {{{'|'.join(SUBCOMMANDS)}}} --flags"
    if len(argv) < 2 or argv[1] not in SUBCOMMANDS:
        if any(arg in ("-h", "--help", "-?", "--helpshort", "--helpfull") for arg in argv[1:]):
            print(f"{__doc__}\n{usage}\n\n`python -m trainers.compression COMMAND --help` lists "
                  "the flags of COMMAND.")
            sys.exit(0)
        print(f"error: the command comes first\n{usage}", file=sys.stderr)
        sys.exit(1)
    define_flags(argv[1])
    if argv[1] == "train":
        FLAGS.set_default("model_dir", "runs/compression")
        FLAGS.set_default("learning_rate", 1e-4)
    cli.run_app(main, __name__, argv=argv, flags_parser=_parse_flags)


if __name__ == "__main__":
    cli_main()
