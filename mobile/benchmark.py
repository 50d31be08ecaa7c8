r"""Latency of a .tflite on this CPU with the LiteRT interpreter (XNNPACK).

    python -m mobile.benchmark --tflite exported/style_int8.tflite [--threads 4 --runs 20]

Prints the median and min latency of one signature call over ``--runs`` timed runs (after
``--warmup`` untimed ones) at the model's input size (``--image_size`` for dynamic-size
models), and the file size. Inputs: random pixels in [0, 1], the default loss weights from
the sidecar (or ones when there is none), style 0.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
from absl import app, flags
from ai_edge_litert.interpreter import Interpreter

from mobile import metadata
from trainers import cli
from yoto_tf.files import write_json_atomically


@dataclasses.dataclass(frozen=True)
class Latency:
    """Timing of one .tflite: milliseconds per signature call."""

    path: str
    size_bytes: int
    threads: int
    runs: int
    input_shapes: dict
    median_ms: float
    min_ms: float
    mean_ms: float

    def line(self) -> str:
        shapes = ", ".join(f"{n}{list(s)}" for n, s in self.input_shapes.items())
        return (
            f"{os.path.basename(self.path)}: median {self.median_ms:.1f} ms, min "
            f"{self.min_ms:.1f} ms over {self.runs} runs, {self.threads} thread(s), "
            f"{self.size_bytes / 1024:.1f} KiB ({shapes})"
        )


def benchmark_inputs(runner, defaults: dict, image_size: int, seed: int = 0) -> dict:
    """One input per signature input: float data -> uniform [0, 1] (dynamic H, W ->
    ``image_size``), ``loss_weights`` -> ``defaults`` (or ones), ints -> 0."""
    rng = np.random.default_rng(seed)
    feed = {}
    for name, detail in runner.get_input_details().items():
        shape = [image_size if d == -1 else int(d) for d in detail["shape_signature"]]
        dtype = detail["dtype"]
        if name in defaults:
            feed[name] = np.asarray(defaults[name], dtype).reshape(shape)
        elif np.issubdtype(dtype, np.floating):
            feed[name] = rng.random(shape, dtype=np.float32).astype(dtype)
        else:
            feed[name] = np.zeros(shape, dtype)
    return feed


def time_runner(runner, feed: dict, runs: int, warmup: int) -> np.ndarray:
    """Milliseconds of each of ``runs`` timed calls (after ``warmup`` untimed ones)."""
    for _ in range(warmup):
        runner(**feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner(**feed)
        times.append((time.perf_counter() - start) * 1e3)
    return np.asarray(times)


def load_runner(path: str, threads: int):
    """(signature runner, sidecar dict or None) of a .tflite with one signature."""
    with open(path, "rb") as f:
        tflite = f.read()
    try:
        meta = metadata.read(path, tflite)
    except metadata.MetadataError:
        meta = None
    try:
        interpreter = Interpreter(model_content=tflite, num_threads=threads)
    except ValueError as error:
        raise ValueError(f"{path!r} is not a valid .tflite file ({error}).") from None
    keys = list(interpreter.get_signature_list())
    if not keys:
        raise ValueError(f"{path!r} has no signature; export it with mobile.convert.")
    key = meta["signature_key"] if meta else keys[0]
    return interpreter.get_signature_runner(key), meta


def benchmark(
    path: str, threads: int = 2, runs: int = 20, warmup: int = 3, image_size: int = 384
) -> Latency:
    """Times the .tflite at ``path`` (see the module docstring)."""
    if not os.path.exists(path):
        raise ValueError(f"No such .tflite file: {path!r}.")
    runner, meta = load_runner(path, threads)
    defaults = {}
    if meta:
        defaults["loss_weights"] = [[c["default"] for c in meta["coefficients"]]]
    feed = benchmark_inputs(runner, defaults, image_size)
    times = time_runner(runner, feed, runs, warmup)
    return Latency(
        path, os.path.getsize(path), threads, runs,
        {n: tuple(v.shape) for n, v in feed.items()},
        float(np.median(times)), float(times.min()), float(times.mean()),
    )


FLAGS = flags.FLAGS


def define_flags():
    """Defines the command-line flags (only when run as a program)."""
    flags.DEFINE_multi_string("tflite", None, "The .tflite file(s) to time; repeatable.")
    flags.DEFINE_integer("threads", 2, "Interpreter (XNNPACK) threads.")
    flags.DEFINE_integer("runs", 20, "Timed runs.")
    flags.DEFINE_integer("warmup", 3, "Untimed runs first.")
    flags.DEFINE_integer("image_size", 384, "H and W for dynamic-size models.")
    flags.DEFINE_string("json", None, "Also write the results to this JSON file.")


def main(argv):
    del argv
    if not FLAGS.tflite:
        raise app.UsageError("--tflite is required.")
    try:
        results = [
            benchmark(p, FLAGS.threads, FLAGS.runs, FLAGS.warmup, FLAGS.image_size)
            for p in FLAGS.tflite
        ]
    except ValueError as error:
        cli.fail("mobile.benchmark", error)
    for result in results:
        print(result.line())
    if FLAGS.json:
        write_json_atomically(FLAGS.json, [dataclasses.asdict(r) for r in results])


if __name__ == "__main__":
    define_flags()
    app.run(main)
