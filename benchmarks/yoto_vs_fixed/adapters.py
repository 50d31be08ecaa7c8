"""Task adapters of the YOTO-versus-fixed harness: how each task (beta_vae, compression,
style_transfer) builds its model for a LossSpace, its training data, its held-out
measurements at a lambda, and its metric (see the package docstring)."""

from __future__ import annotations

import abc
import dataclasses
import os
from typing import Callable, Mapping

import keras
import numpy as np

from yoto_tf.coefficients import Coefficient, LossSpace
from yoto_tf.files import write_atomically
from yoto_tf.training import LossConditionalModel


@dataclasses.dataclass(frozen=True)
class HarnessSettings:
    """Settings every adapter receives (from the flags); each task reads what it needs.

    Attributes:
      image_size: training (and evaluation) image / crop side.
      batch_size: batch size of every model.
      eval_examples: held-out examples per evaluation.
      seed: seed of the data: the held-out (test) and validation examples, the
        pre-rendered beta-VAE pool, the evaluation noise; and the training seed of a run
        with one seed (a model's training seed is ``ModelSpec.seed``).
      train_data, eval_data: image sources (``yoto_tf.image_sources.parse_source`` specs) of the
        image tasks (compression, style transfer); None: ``builtin``, and evaluation crops
        drawn from the training source with a seed of their own.
      style_image: style transfer's style image file (None: the built-in one).
      vgg_weights: style transfer's VGG weights (``auto``, ``imagenet``, ``none``, a path).
      train_examples: beta-VAE: 0 trains on the endless tf.data stream of fresh shapes
        (TensorFlow backend only); N > 0 on a pool of N pre-rendered shapes (any backend,
        and fast enough to feed a GPU).
      cache_dir: where a task may cache prepared training data (the beta-VAE pool); None:
        keep it in memory.
      mean_scale, mixed_quantization: compression: the ``CompressionNetwork`` options of
        the same names (mean-scale hyperprior; straight-through rounding for the synthesis),
        as ``trainers.compression --mean_scale --mixed_quantization``.
      geometric_mean_weights: compression: per-example weights divided by their geometric
        mean, as the trainer's flag of that name (False: the plain weighted sum, the
        objective this benchmark trained before it used the trainer's builder).
    """

    image_size: int = 64
    batch_size: int = 32
    eval_examples: int = 512
    seed: int = 0
    train_data: str | None = None
    eval_data: str | None = None
    style_image: str | None = None
    vgg_weights: str = "auto"
    train_examples: int = 0
    cache_dir: str | None = None
    mean_scale: bool = False
    mixed_quantization: bool = False
    geometric_mean_weights: bool = True


class TaskAdapter(abc.ABC):
    """What the harness needs from a task.

    Attributes:
      name: the task name used on the command line.
      coefficient: the swept coefficient (lambda) of the task's LossSpace.
      metric_name: what :meth:`metric` computes (for CSV and plot labels).
      supports_kl_warmup: whether :meth:`build_model` takes ``kl_warmup_steps``.
      own_settings: the ``HarnessSettings`` fields only this task reads (other tasks leave
        them out of a saved model's recipe).
      rate_quality: for a rate-quality task, the names of its rate and quality measurements
        (see :meth:`evaluate`): the report then adds Bjontegaard deltas of each YOTO
        curve against the fixed models' curve; None for other tasks.
    """

    name: str
    coefficient: str
    metric_name: str = "objective"
    supports_kl_warmup: bool = False
    own_settings: tuple[str, ...] = ()
    rate_quality: tuple[str, str] | None = None

    def __init__(self, settings: HarnessSettings):
        self.settings = settings

    @abc.abstractmethod
    def loss_space(self, low: float | None, high: float | None) -> LossSpace:
        """The YOTO LossSpace, the swept coefficient on [low, high] (None: the task default)."""

    @abc.abstractmethod
    def build_model(self, loss_space: LossSpace, width_multiplier: float, seed: int) -> LossConditionalModel:
        """An uncompiled model with the task's network for ``loss_space`` (built by the
        task's own builder, the one its trainer uses). Adapters with
        ``supports_kl_warmup`` also take ``kl_warmup_steps``."""

    @abc.abstractmethod
    def train_dataset(self, batch_size: int, seed: int):
        """Endless batches of what the model takes (a tf.data.Dataset or a Keras PyDataset)."""

    def prepare_training_data(self) -> None:
        """Builds any shared training data once, before models train (possibly in other
        processes, which then reuse it through ``settings.cache_dir``). Default: nothing."""

    def optimizer(self, learning_rate) -> keras.optimizers.Optimizer:
        """The optimizer of every model of this task (default: Adam); ``learning_rate`` is a
        float or a ``keras.optimizers.schedules`` schedule."""
        return keras.optimizers.Adam(learning_rate)

    @abc.abstractmethod
    def evaluate(self, network: keras.Model, lam: np.ndarray, split: str = "test") -> dict[str, np.ndarray]:
        """Per-example measurements [N] of ``network`` run at the raw lambda ``lam`` [k] on the
        ``split`` examples (``"test"``: the held-out set; ``"validation"``: another set, for
        choosing settings): at least every loss term (by name), optionally more (e.g. PSNR)."""

    def metric(self, measurements: Mapping[str, np.ndarray], lam: np.ndarray, space: LossSpace) -> np.ndarray:
        """The task metric per example [N] at lambda ``lam`` [k] (lower is better); default:
        the objective ``sum_i lam_i * term_i``. Linear in the terms, so its mean is the
        metric of the mean terms."""
        return np.asarray(sum(lam[i] * np.asarray(measurements[name], np.float64)
                              for i, name in enumerate(space.names)))


class BetaVAEAdapter(TaskAdapter):
    """beta-VAE on procedural shapes; lambda = beta; metric = negative beta-ELBO (nats).
    Every model trains with the loss weights divided by their geometric mean (the
    beta-VAE default, see ``yoto_tf.beta_vae.model.build_model``), optionally with a KL
    warm-up, on the endless shapes stream or, with ``settings.train_examples``, on a
    pre-rendered pool (see ``yoto_tf.beta_vae.pool``). Test and validation examples are
    the shapes splits ``"test"`` and ``"validation"``."""

    name = "beta_vae"
    coefficient = "kl"
    metric_name = "neg_beta_elbo"
    supports_kl_warmup = True

    def __init__(self, settings: HarnessSettings):
        super().__init__(settings)
        from yoto_tf.beta_vae import shapes

        self._shapes = shapes
        self._pool = None  # the training pool, once rendered or loaded (see _train_pool)
        self._validation = None  # rendered when a learning-rate sweep first needs it
        self.images = self._split_images("test")

    def _split_images(self, split: str) -> np.ndarray:
        images, _ = self._shapes.shape_images(range(self.settings.eval_examples), self.settings.image_size,
                                              seed=self.settings.seed, split=split)
        return images

    def loss_space(self, low, high):
        from yoto_tf.beta_vae import model

        default_low, default_high = model.DEFAULT_BETA_RANGE
        return model.beta_loss_space(low or default_low, high or default_high)

    def build_model(self, loss_space, width_multiplier, seed, kl_warmup_steps=0):
        from yoto_tf.beta_vae import model

        return model.build_model(loss_space, self.settings.image_size,
                                 width_multiplier=width_multiplier, seed=seed,
                                 kl_warmup_steps=kl_warmup_steps)

    def train_dataset(self, batch_size, seed):
        from yoto_tf.beta_vae import pool

        if self.settings.train_examples > 0:
            return pool.PoolBatches(self._train_pool(), batch_size, seed=seed)
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                f"beta_vae on the {keras.backend.backend()} backend needs --train_examples > 0 "
                "(a pre-rendered pool): the endless shapes stream is tf.data."
            )
        return self._shapes.shapes_dataset(batch_size, self.settings.image_size, seed=seed)

    def prepare_training_data(self):
        if self.settings.train_examples > 0:
            self._train_pool()

    def _train_pool(self) -> np.ndarray:
        """The training pool, uint8 [N, S, S, 3]: rendered once, cached in ``cache_dir``."""
        from yoto_tf.beta_vae import pool

        s = self.settings
        if self._pool is not None:
            return self._pool
        if s.cache_dir is None:
            self._pool = pool.render_pool(s.train_examples, s.image_size, seed=s.seed)
            return self._pool
        path = os.path.join(s.cache_dir, f"shapes_train_seed{s.seed}_{s.image_size}px_{s.train_examples}.npy")
        if not os.path.exists(path):
            os.makedirs(s.cache_dir, exist_ok=True)
            images = pool.render_pool(s.train_examples, s.image_size, seed=s.seed)
            write_atomically(path, lambda tmp: np.save(tmp, images), suffix=".npy")
        self._pool = np.load(path, mmap_mode="r")
        return self._pool

    def evaluate(self, network, lam, split="test"):
        from yoto_tf.beta_vae import evaluation

        return evaluation.example_terms(network, self._images(split), lam, seed=self.settings.seed)

    def _images(self, split: str) -> np.ndarray:
        if split == "validation":
            if self._validation is None:
                self._validation = self._split_images("validation")
            return self._validation
        _check_split(split)
        return self.images


def _check_split(split: str) -> None:
    if split not in ("test", "validation"):
        raise ValueError(f"Unknown evaluation split {split!r}; expected 'test' or 'validation'.")


def _heldout_crops(settings: HarnessSettings, size: int, split: str = "test") -> np.ndarray:
    """``eval_examples`` crops float32 [N, size, size, 3]: of the evaluation images
    (``"test"``), or of the training images with a seed of their own (``"validation"``:
    for choosing settings, so the test images stay unseen)."""
    from yoto_tf import data

    _check_split(split)
    if split == "test":
        spec, seed = settings.eval_data or settings.train_data or "builtin", settings.seed + 1_000_003
    else:
        spec, seed = settings.train_data or "builtin", settings.seed + 2_000_003
    batches = data.image_dataset(spec, size, settings.eval_examples, seed=seed)
    return next(iter(batches)).numpy()


class _ImageTaskAdapter(TaskAdapter):
    """An image task's held-out crops: ``self.images`` (test), validation crops on demand."""

    def __init__(self, settings: HarnessSettings):
        super().__init__(settings)
        self.images = _heldout_crops(settings, settings.image_size)
        self._validation = None

    def _images(self, split: str) -> np.ndarray:
        if split == "validation":
            if self._validation is None:
                self._validation = _heldout_crops(self.settings, self.settings.image_size, "validation")
            return self._validation
        _check_split(split)
        return self.images


def _swept_only(space: LossSpace, coefficient: str, low: float | None, high: float | None) -> LossSpace:
    """``space`` with ``coefficient`` log-uniform on [low, high] (None: its own range) and
    every other coefficient fixed at its default: a one-dimensional YOTO problem."""
    swept = space.coefficient(coefficient)
    low, high = low or swept.low, high or swept.high
    return LossSpace([
        Coefficient(c.name, low, high, "log_uniform") if c.name == coefficient
        else Coefficient.fixed(c.name, c.default)
        for c in space.coefficients
    ])


class CompressionAdapter(_ImageTaskAdapter):
    """Scale-hyperprior compression; lambda = the distortion weight (on 255^2 MSE, rate in
    bpp fixed at 1); metric = the rate-distortion loss ``lambda * 255^2 * MSE + bpp`` with
    the model's estimated bits (rounded latents); the report adds BD-rates (PSNR) of each
    YOTO model against the fixed models' RD curve. Small CPU-scale transforms: N = 32 and
    M = 48 channels times the width multiplier; ``settings.mean_scale`` and
    ``settings.mixed_quantization`` choose the recipe. Crops must be multiples of 64."""

    name = "compression"
    coefficient = "distortion"
    metric_name = "rd_loss"
    own_settings = ("mean_scale", "mixed_quantization", "geometric_mean_weights")
    rate_quality = ("rate", "psnr_db")
    NUM_FILTERS, NUM_LATENT = 32, 48

    def __init__(self, settings: HarnessSettings):
        if settings.image_size % 64:
            raise ValueError(f"compression needs --image_size a multiple of 64, got {settings.image_size}.")
        super().__init__(settings)

    def loss_space(self, low, high):
        from yoto_tf.compression import model

        default_low, default_high = model.DEFAULT_LAMBDA_RANGE
        return model.compression_loss_space((low or default_low, high or default_high))

    def build_model(self, loss_space, width_multiplier, seed):
        from yoto_tf.compression.training import build_model

        # The trainer's builder: geometric-mean weighting on by default, as in
        # trainers.compression (a plain LossConditionalModel here measured another objective
        # than users train).
        return build_model(
            loss_space, max(1, round(self.NUM_FILTERS * width_multiplier)),
            max(1, round(self.NUM_LATENT * width_multiplier)), seed=seed,
            geometric_mean_weights=self.settings.geometric_mean_weights,
            mean_scale=self.settings.mean_scale, mixed_quantization=self.settings.mixed_quantization,
        )

    def optimizer(self, learning_rate):
        return keras.optimizers.Adam(learning_rate, global_clipnorm=1.0)  # as trainers.compression

    def train_dataset(self, batch_size, seed):
        from yoto_tf import data

        return data.image_dataset(self.settings.train_data or "builtin", self.settings.image_size,
                                  batch_size, seed=seed)

    def evaluate(self, network, lam, split="test"):
        from yoto_tf.compression import metrics, model

        images = self._images(split)
        lam_batch = np.tile(np.asarray(lam, np.float32)[None], (len(images), 1))
        outputs = network((keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(lam_batch)),
                          training=False)
        terms = {k: keras.ops.convert_to_numpy(v).astype(np.float64) for k, v in
                 model.rate_distortion_terms(images, outputs).items()}
        x_hat = keras.ops.convert_to_numpy(outputs["x_hat"])
        psnr = [metrics.psnr(image, decoded, data_range=1.0) for image, decoded in zip(images, x_hat)]
        return {**terms, "psnr_db": np.asarray(psnr, np.float64)}


class StyleTransferAdapter(_ImageTaskAdapter):
    """Adjustable style transfer, one style; lambda = the ``content`` weight on [0.1, 10],
    the other six weights fixed at their defaults (for YOTO too: a one-dimensional
    comparison). Transformer width 0.25 times the width multiplier.

    Models train on terms divided by their OWN running means, so the raw objective is not
    comparable across models; the metric is ``sum_i lambda_i * L_i / ref_i`` with fixed
    scales ``ref_i``: the terms of a reference output, the evaluation images blurred by a
    5x5 box filter (model-independent and non-zero for every term)."""

    name = "style_transfer"
    coefficient = "content"
    metric_name = "normalized_objective"
    BASE_WIDTH = 0.25

    def __init__(self, settings: HarnessSettings):
        super().__init__(settings)
        from yoto_tf import image_sources
        from yoto_tf.images import load_image
        from yoto_tf.style_transfer import StyleTransferLoss

        style = load_image(settings.style_image or image_sources.builtin_style_image_path())
        self.losses = StyleTransferLoss([style], vgg_weights=settings.vgg_weights,
                                        style_size=max(128, settings.image_size))
        blurred = keras.ops.average_pool(self.images, 5, strides=1, padding="same")
        self.reference = {k: float(np.mean(v)) for k, v in self._example_terms(self.images, blurred).items()}

    def _example_terms(self, images, outputs) -> dict[str, np.ndarray]:
        terms = self.losses(keras.ops.convert_to_tensor(images), outputs)
        return {k: keras.ops.convert_to_numpy(v).astype(np.float64) for k, v in terms.items()}

    def loss_space(self, low, high):
        from yoto_tf.style_transfer import style_transfer_loss_space

        return _swept_only(style_transfer_loss_space(), self.coefficient, low, high)

    def build_model(self, loss_space, width_multiplier, seed):
        from yoto_tf.style_transfer.training import build_model

        return build_model(self.losses, loss_space, width_multiplier=self.BASE_WIDTH * width_multiplier, seed=seed)

    def train_dataset(self, batch_size, seed):
        from yoto_tf.style_transfer.training import training_dataset

        return training_dataset(self.settings.train_data or "builtin", self.settings.image_size,
                                batch_size, seed=seed)

    def evaluate(self, network, lam, split="test"):
        from yoto_tf.style_transfer import IMAGE_INPUT, LAMBDA_INPUT

        images = self._images(split)
        lam_batch = np.tile(np.asarray(lam, np.float32)[None], (len(images), 1))
        feed = {IMAGE_INPUT: images, LAMBDA_INPUT: lam_batch}
        outputs = network({k: keras.ops.convert_to_tensor(v) for k, v in feed.items()}, training=False)
        return self._example_terms(images, outputs)

    def metric(self, measurements, lam, space):
        return np.asarray(sum(lam[i] * np.asarray(measurements[name], np.float64) / self.reference[name]
                              for i, name in enumerate(space.names)))


ADAPTERS: dict[str, Callable[[HarnessSettings], TaskAdapter]] = {
    adapter.name: adapter for adapter in (BetaVAEAdapter, CompressionAdapter, StyleTransferAdapter)
}


def make_adapter(task: str, settings: HarnessSettings) -> TaskAdapter:
    """The adapter of ``task`` (loads its evaluation data). Raises ValueError if unknown."""
    if task not in ADAPTERS:
        raise ValueError(f"Unknown task {task!r}; available: {sorted(ADAPTERS)}.")
    return ADAPTERS[task](settings)

