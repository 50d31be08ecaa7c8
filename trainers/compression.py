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

import sys

from absl import app, flags

from trainers import cli
from trainers import compression_coding, compression_train

FLAGS = flags.FLAGS

SUBCOMMANDS = ("train", "compress", "decompress")

def define_flags(command: str | None = None) -> None:
    """Defines the flags of ``command`` (train, compress or decompress).

    Each command has only its own flags, so ``COMMAND --help`` lists them and a flag of
    another command is refused. ``command=None`` defines the flags of all three (for code and
    tests that set flags and call :func:`main`; the flag names do not overlap). Idempotent.
    """
    for name in SUBCOMMANDS if command is None else (command,):
        if name == "train":
            if "patch_size" not in FLAGS:
                compression_train.define_flags()
                flags.adopt_module_key_flags(compression_train)
        else:
            compression_coding.define_flags(name)
            flags.adopt_module_key_flags(compression_coding)


def main(argv):
    if len(argv) != 2 or argv[1] not in SUBCOMMANDS:
        raise app.UsageError(f"usage: python -m trainers.compression {{{'|'.join(SUBCOMMANDS)}}} --flags")
    try:
        if argv[1] == "train":
            try:
                task = compression_train.make_task()
            except ValueError as err:
                raise cli.CommandError(str(err)) from None
            from trainers import core  # pylint: disable=import-outside-toplevel

            core.train_from_flags(task)
        elif argv[1] == "compress":
            compression_coding.compress()
        else:
            compression_coding.decompress()
    except cli.CommandError as err:
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
        return name in compression_train.TRAIN_FLAGS or name in ("tfds_data_dir", *common) or name.startswith("no") and (
            name[2:] in compression_train.TRAIN_FLAGS)
    return name in compression_coding.CODING_FLAGS[command]


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
