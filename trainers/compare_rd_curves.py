r"""Bjontegaard deltas between two RD curves from the ``mean.csv`` files of earlier
``python -m trainers.evaluate_compression`` runs: a new model against the last one evaluated
in another session, or a model against WebP over parts of its lambda range.

Prints one line for the whole test curve, then one per ``--test_ranges`` entry (only the
test curve's points whose lambda, or quality for JPEG / WebP, lies in the range; the anchor
keeps all its points): BD-rate on PSNR (negative: the test needs fewer bits at equal PSNR),
BD-PSNR, and BD-rate on MS-SSIM when both files have it.

Usage::

    python -m trainers.compare_rd_curves \
        --test runs/eval_new/mean.csv:mean_scale_64_s192_c8_69k --anchor webp \
        --test_ranges 0.0018:0.011,0.0018:0.028,0.011:0.18
    python -m trainers.compare_rd_curves --test runs/eval_new/mean.csv:NEW_MODEL \
        --anchor runs/eval_old/mean.csv:OLD_MODEL
"""

from __future__ import annotations

from absl import app, flags

from trainers import cli
from yoto_tf.compression.evaluation import bjontegaard_row, read_mean_curve

FLAGS = flags.FLAGS

flags.DEFINE_string("test", None, "CSV:CODEC: the curve under test, e.g. runs/eval/mean.csv:mean_scale_64_30k.")
flags.DEFINE_string("anchor", None, "CSV:CODEC, or only CODEC for a codec of --test's file (e.g. webp).")
flags.DEFINE_list("test_ranges", [], "LO:HI,...: also compare only the test curve's points with a lambda "
                  "(quality for JPEG / WebP) in each closed range.")


def parse_curve_spec(flag: str, spec: str, default_path: str | None = None) -> tuple[str, str]:
    """``"PATH:CODEC"`` -> ``(PATH, CODEC)`` (split at the last colon); a bare ``"CODEC"``
    takes ``default_path``.

    Raises:
      ValueError: naming the flag: empty, or no file part where there is no default.
    """
    path, _, codec = (spec or "").rpartition(":")
    if not codec or not (path or default_path):
        raise ValueError(f"{flag} must be CSV:CODEC (e.g. runs/eval/mean.csv:webp), got {spec!r}.")
    return path or default_path, codec


def parse_value_range(text: str) -> tuple[float, float]:
    """``"LO:HI"`` -> ``(LO, HI)`` with 0 < LO < HI.

    Raises:
      ValueError: naming ``--test_ranges`` and the expected form.
    """
    return cli.parse_range("--test_ranges", text.replace(":", ","))


def _format(label: str, row: dict) -> str:
    def percent(value):
        return "-" if value is None else f"{value:+.2f} %"
    bd_psnr = "-" if row["bd_psnr_db"] is None else f"{row['bd_psnr_db']:+.3f} dB"
    return (f"{label} ({row['test_points']} points): BD-rate PSNR {percent(row['bd_rate_psnr_percent'])}, "
            f"BD-PSNR {bd_psnr}, BD-rate MS-SSIM {percent(row['bd_rate_ms_ssim_percent'])}"
            + (f" ({row['note']})" if row["note"] else ""))


def compare() -> list[str]:
    """The report lines of the flags' comparison.

    Raises:
      ValueError: a bad flag value or an unusable file (see :func:`read_mean_curve`).
    """
    test_path, test_codec = parse_curve_spec("--test", FLAGS.test)
    anchor_path, anchor_codec = parse_curve_spec("--anchor", FLAGS.anchor, default_path=test_path)
    ranges = [parse_value_range(text) for text in FLAGS.test_ranges]
    anchor = read_mean_curve(anchor_path, anchor_codec)
    lines = [f"{test_codec} ({test_path}) against {anchor_codec} ({anchor_path}, {len(anchor.bpp)} points)",
             _format("all", bjontegaard_row(read_mean_curve(test_path, test_codec), anchor))]
    for low, high in ranges:
        test = read_mean_curve(test_path, test_codec, values=(low, high))
        lines.append(_format(f"{low:g}-{high:g}", bjontegaard_row(test, anchor)))
    return lines


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        lines = compare()
    except ValueError as error:
        cli.fail("compare_rd_curves", error)
    print("\n".join(lines))


if __name__ == "__main__":
    flags.mark_flags_as_required(["test", "anchor"])
    app.run(main)
