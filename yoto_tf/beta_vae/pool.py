"""A pre-rendered pool of shapes images, served as shuffled batches on any Keras backend.

Rendering a 64 x 64 shapes image costs about 1 ms of one CPU core, far slower than a
training step of the beta-VAE on a GPU. For such machines (and for the JAX and PyTorch
backends, which have no tf.data) the examples ``0 .. N-1`` of a split are rendered once, in
parallel processes, into a uint8 pool, and :class:`PoolBatches` serves shuffled batches of
it to ``model.fit``. The stream of :func:`yoto_tf.beta_vae.shapes.shapes_dataset` (fresh
examples forever) stays the TensorFlow trainer's default.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os

import keras
import numpy as np

from yoto_tf.beta_vae import shapes

_CHUNK = 2048  # examples rendered per task of a worker process


def _render_chunk(start: int, stop: int, image_size: int, seed: int, split: str) -> np.ndarray:
    images, _ = shapes.shape_images(range(start, stop), image_size, seed=seed, split=split)
    return np.rint(images * 255.0).astype(np.uint8)


def render_pool(
    num_examples: int,
    image_size: int = 64,
    seed: int = 0,
    split: str = "train",
    workers: int | None = None,
) -> np.ndarray:
    """Examples ``0 .. num_examples-1`` of a shapes split as uint8 [N, S, S, 3].

    Identical to ``shape_images(range(num_examples), ...)`` rounded to 8 bits, whatever
    ``workers`` is (each example depends only on its index).

    Args:
      num_examples: pool size N (>= 1).
      image_size: side S.
      seed, split: as in :func:`yoto_tf.beta_vae.shapes.shape_images`.
      workers: rendering processes (None: the machine's CPU count; 1: this process).
    """
    if num_examples < 1:
        raise ValueError(f"num_examples must be positive, got {num_examples}.")
    shapes.sample_factors([0], seed, split)  # validates split and seed before any work
    starts = list(range(0, num_examples, _CHUNK))
    bounds = [(start, min(start + _CHUNK, num_examples)) for start in starts]
    workers = min(len(bounds), workers or os.cpu_count() or 1)
    if workers == 1:
        chunks = [_render_chunk(a, b, image_size, seed, split) for a, b in bounds]
    else:
        # "spawn": forking a process that already runs TF or JAX threads can deadlock.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as executor:
            futures = [executor.submit(_render_chunk, a, b, image_size, seed, split) for a, b in bounds]
            chunks = [future.result() for future in futures]
    return np.concatenate(chunks)


class PoolBatches(keras.utils.PyDataset):
    """An endless stream of shuffled float32 batches [B, S, S, 3] in [0, 1] from a uint8 pool.

    Every pass over the pool ("epoch") visits each example once in an order drawn from
    ``(seed, pass)``, so batch ``i`` is the same on every run; a batch never straddles two
    passes (the last ``N mod B`` examples of a pass are skipped in that pass).

    Args:
      pool: uint8 [N, S, S, 3] (e.g. from :func:`render_pool`), N >= batch_size.
      batch_size: B.
      seed: seed of the shuffling.
    """

    def __init__(self, pool: np.ndarray, batch_size: int, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        pool = np.asarray(pool)
        if pool.dtype != np.uint8 or pool.ndim != 4 or pool.shape[-1] != 3:
            raise ValueError(f"pool must be uint8 [N, S, S, 3], got {pool.dtype} {pool.shape}.")
        if not 1 <= batch_size <= len(pool):
            raise ValueError(f"batch_size must be in [1, {len(pool)}] (the pool size), got {batch_size}.")
        self.pool = pool
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.batches_per_pass = len(pool) // self.batch_size
        self._order_pass, self._order = -1, None

    @property
    def num_batches(self):
        return None  # endless: fit(steps_per_epoch=...) decides how many

    def __getitem__(self, index):
        pass_index, position = divmod(int(index), self.batches_per_pass)
        if pass_index != self._order_pass:
            self._order = np.random.default_rng([self.seed, pass_index]).permutation(len(self.pool))
            self._order_pass = pass_index
        rows = np.sort(self._order[position * self.batch_size:(position + 1) * self.batch_size])
        return self.pool[rows].astype(np.float32) * np.float32(1.0 / 255.0)
