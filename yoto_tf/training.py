"""Loss-conditional training: one model trained on a distribution of loss weightings.

:class:`LossConditionalModel` wraps a conditioned network and a task's per-example loss
terms. At every step it samples one lambda per EXAMPLE from the LossSpace, calls the
network on ``(inputs, lambda)``, and minimizes the batch mean of
``sum_i lambda_i * L_i`` (optionally with every ``L_i`` divided by its running mean).
It is a ``keras.Model``: use ``compile`` / ``fit`` / ``evaluate`` as usual, inside a
``tf.distribute`` strategy scope if you like.
"""

from __future__ import annotations

from typing import Callable, Mapping

import keras
from keras import ops

from yoto_tf.coefficients import LossSpace, as_loss_space
from yoto_tf.layers.conditioning import find_loss_space

LossTermsFn = Callable[..., Mapping[str, "keras.KerasTensor"]]
WEIGHT_NORMALIZATIONS = ("none", "geometric_mean")


def _scale_for_replicas(value):
    """Divides a per-replica loss by the number of replicas (tf.distribute sums the
    replicas' gradients); the identity outside a TF distribution strategy."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            value = value / float(replicas)
    return value


def _in_multi_worker_collective_mode() -> bool:
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.extended._in_multi_worker_mode()
    )


def _as_vectors(logs):
    """Keras 3.15 reduces step outputs across workers with ``strategy.reduce("MEAN", v,
    axis=0)``, which fails on scalars under MultiWorkerMirroredStrategy; shape-[1] values
    reduce correctly (and read the same in the logs)."""
    if not _in_multi_worker_collective_mode():
        return logs
    return {name: ops.reshape(value, (1,)) for name, value in logs.items()}


class LossConditionalModel(keras.Model):
    """Trains ``network`` on the LossSpace's distribution of loss weightings (YOTO).

    Args:
      network: a Keras model called as ``network((inputs, lam), training=...)`` where
        ``lam`` is the raw lambda [B, k]; it normally contains a ConditioningNetwork.
      loss_terms: ``loss_terms(inputs, outputs) -> {name: [B] tensor}``, the task's
        per-example loss terms, one per coefficient of the LossSpace (a Keras layer or
        model is tracked, so e.g. a frozen VGG inside it is built and saved with this
        model). Terms are per-example: the mean over the batch happens here, after the
        per-example weighting.
      loss_space: the LossSpace; by default read from the network's ConditioningNetwork.
      normalize_terms: divide every term by an exponential moving average of its batch
        mean (Adjustable Style Transfer), so lambda values of different terms are
        comparable. The averages are saved with the model.
      ema_decay: decay of those moving averages.
      weight_normalization: how each example's raw lambda becomes the weights of its loss
        terms (see :meth:`loss_weights`): ``"none"`` (lambda itself) or
        ``"geometric_mean"`` (lambda divided by the geometric mean of its entries, YOTO's
        option: the same minimizer for every lambda, but examples with large weights no
        longer dominate the batch gradient). The network always sees the raw lambda.
      seed: seed of the lambda sampler.

    Data: ``fit`` takes batches of ``inputs`` (any structure the network accepts as its
    first input), or dicts ``{"inputs": ..., "lambda": [B, k]}`` to fix lambda (e.g. to
    evaluate at one weighting).

    Metrics: ``loss`` (the weighted total) and one metric per term, named like the term,
    holding its unweighted batch mean.
    """

    def __init__(
        self,
        network: keras.Model,
        loss_terms: LossTermsFn,
        loss_space: LossSpace | None = None,
        normalize_terms: bool = False,
        ema_decay: float = 0.99,
        weight_normalization: str = "none",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.network = network
        self.loss_terms = loss_terms
        self.loss_space = (
            find_loss_space(network) if loss_space is None else as_loss_space(loss_space)
        )
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}.")
        if weight_normalization not in WEIGHT_NORMALIZATIONS:
            raise ValueError(
                f"weight_normalization must be one of {WEIGHT_NORMALIZATIONS}, got "
                f"{weight_normalization!r}."
            )
        self.weight_normalization = weight_normalization
        self.normalize_terms = bool(normalize_terms)
        self.ema_decay = float(ema_decay)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.term_trackers = [
            keras.metrics.Mean(name=name) for name in self.loss_space.names
        ]
        if self.normalize_terms:
            k = self.loss_space.size
            self.term_means = self.add_weight(
                name="term_means", shape=(k,), initializer="ones",
                trainable=False, aggregation="mean",
            )
            self.term_means_initialized = self.add_weight(
                name="term_means_initialized", shape=(), initializer="zeros",
                trainable=False, aggregation="mean",
            )

    def build(self, input_shape=None):
        # The wrapped network builds itself (functional, or on its first call); this
        # wrapper has no weights of its own beyond those created in __init__.
        self.built = True

    # ----------------------------------------------------------------- forward
    @staticmethod
    def _split(x):
        if isinstance(x, Mapping):
            if "inputs" not in x:
                raise ValueError(
                    "A dict batch must hold 'inputs' (and optionally 'lambda'); "
                    f"got keys {sorted(x)}."
                )
            return x["inputs"], x.get("lambda")
        return x, None

    def saved_network(self):
        """The network a trainer saves and evaluates: ``network`` itself by default. Override
        when training runs a variant of it (style transfer trains a lambda-map twin and
        saves the per-image network with its weights)."""
        return self.network

    def call_network(self, inputs, lam, training=False):
        """Runs the conditioned network; override to add task inputs (e.g. a style index)."""
        return self.network((inputs, lam), training=training)

    def call(self, x, training=False):
        inputs, lam = self._split(x)
        if lam is None:
            first = next(t for t in keras.tree.flatten(inputs) if t is not None)
            lam = self.sample_lambda(ops.shape(first)[0])
        lam = ops.cast(lam, "float32")
        outputs = self.call_network(inputs, lam, training=training)
        return {"outputs": outputs, "lambda": lam}

    def sample_lambda(self, batch_size):
        """The training lambdas [B, k]: the LossSpace's distribution, one draw per example.

        Override to change the sampling (e.g. tie some coefficients together); build it on
        :meth:`uniform_noise` so replicas keep drawing different values.
        """
        return self.loss_space.from_uniform(self.uniform_noise(batch_size))

    def uniform_noise(self, batch_size):
        """[B, k] uniform noise for the lambda sampler, different on every replica (a
        plain SeedGenerator would give every replica of a tf.distribute strategy the same
        lambdas)."""
        shape = (batch_size, self.loss_space.size)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            context = tf.distribute.get_replica_context()
            if context is not None and context.num_replicas_in_sync > 1:
                seed = ops.cast(self.seed_generator.next(), "int64")
                replica = ops.cast(context.replica_id_in_sync_group, "int64")
                offset = ops.stack([(replica + 1) * 1_000_003, ops.cast(0, "int64")])
                return tf.random.stateless_uniform(shape, seed + offset)
        return keras.random.uniform(shape, seed=self.seed_generator)

    # ----------------------------------------------------------------- loss
    def per_example_terms(self, inputs, outputs):
        """The task's loss terms stacked into [B, k] in LossSpace order (unweighted)."""
        terms = self.loss_terms(inputs, outputs)
        names = self.loss_space.names
        if set(terms) != set(names):
            raise ValueError(
                f"loss_terms returned terms {sorted(terms)} but the LossSpace weights "
                f"{list(names)}; they must match one to one."
            )
        columns = []
        for name in names:
            term = ops.cast(terms[name], "float32")
            if len(term.shape) != 1:
                raise ValueError(
                    f"Loss term {name!r} must be per-example with shape [B], got "
                    f"{tuple(term.shape)}."
                )
            columns.append(term)
        return ops.stack(columns, axis=-1)

    def loss_weights(self, lam):
        """The weights [B, k] of each example's loss terms, from its raw lambda [B, k].

        Only the ratios of an example's weights decide its optimum, so rescaling each row
        changes how much the example counts in the batch, not what it asks for. Override to
        rescale differently (style transfer scales each row to a constant sum).
        """
        if self.weight_normalization == "geometric_mean":
            return lam / ops.exp(ops.mean(ops.log(lam), axis=-1, keepdims=True))
        return lam

    def scheduled_weights(self, weights, training):
        """The weights [B, k] a step uses: ``weights`` (from :meth:`loss_weights`) after any
        training schedule. Default: unchanged. Override to ramp a term in over training
        (the beta-VAE's KL warm-up); with ``training`` False (evaluation) return the
        target weights, so evaluated losses are the objective itself.
        """
        del training
        return weights

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        inputs, _ = self._split(x)
        terms, losses = self.terms_and_example_losses(inputs, y_pred["outputs"], y_pred["lambda"], training)
        for i, tracker in enumerate(self.term_trackers):
            tracker.update_state(terms[:, i])
        total = ops.mean(losses)
        total = _scale_for_replicas(total)
        for extra in self.losses:  # regularizers of the network's layers
            total = total + _scale_for_replicas(ops.cast(ops.sum(extra), "float32"))
        return total

    def terms_and_example_losses(self, inputs, outputs, lam, training):
        """``(terms [B, k], losses [B])``: the unweighted terms (from :meth:`per_example_terms`;
        tracked as metrics) and each example's loss (from :meth:`example_losses`). Override
        when both come from one computation (style transfer's lambda maps: the whole-image
        and per-region terms from one VGG pass)."""
        terms = self.per_example_terms(inputs, outputs)
        return terms, self.example_losses(inputs, outputs, lam, terms, training)

    def example_losses(self, inputs, outputs, lam, terms, training):
        """The loss of every example [B]: its unweighted terms [B, k] (from
        :meth:`per_example_terms`) weighted by :meth:`scheduled_weights` of
        :meth:`loss_weights` of its raw lambda [B, k] (after the optional term
        normalization). Override to weight the loss another way, e.g. per pixel with a
        lambda map (``yoto_tf.compression.training``); the batch mean, the replicas'
        scaling and the layers' regularizers stay in :meth:`compute_loss`."""
        weights = self.scheduled_weights(self.loss_weights(lam), training)
        if self.normalize_terms:
            terms = terms / ops.stop_gradient(self._update_term_means(terms, training))
        return ops.sum(weights * terms, axis=-1)

    def _update_term_means(self, terms, training):
        if not training:
            return self.term_means
        batch_means = ops.stop_gradient(ops.mean(terms, axis=0))
        decayed = self.ema_decay * self.term_means + (1.0 - self.ema_decay) * batch_means
        new_means = ops.where(self.term_means_initialized > 0, decayed, batch_means)
        new_means = ops.maximum(new_means, 1e-12)
        self.term_means.assign(new_means)
        self.term_means_initialized.assign(1.0)
        return new_means

    # The JAX trainer's steps take (state, data); only TensorFlow's logs need reshaping.
    def train_step(self, *args):
        return _as_vectors(super().train_step(*args))

    def test_step(self, *args):
        return _as_vectors(super().test_step(*args))

    @property
    def metrics(self):
        tracked = list(super().metrics)
        return tracked + [t for t in self.term_trackers if t not in tracked]
