r"""Trains the two-target toy YOTO model (see yoto_tf/toy.py) with the shared trainer core.

  python -m trainers.toy --model_dir runs/toy --steps 2000

Prints, at the end, the distance to the closed-form optimum y*(lambda) at held-out lambdas.
"""

from absl import app, flags, logging
import numpy as np
import tensorflow as tf

from trainers import core
from yoto_tf import toy
from yoto_tf.training import LossConditionalModel

flags.DEFINE_bool("conditioned", True, "Feed lambda to the network (False: the unconditioned baseline).")
FLAGS = flags.FLAGS


def make_task() -> core.TrainTask:
    space = toy.loss_space()

    def build_model():
        return LossConditionalModel(
            toy.build_network(space, FLAGS.conditioned), toy.loss_terms, loss_space=space,
            seed=FLAGS.seed,
        )

    def make_dataset(batch_size, seed):
        return tf.data.Dataset.from_tensors(tf.ones([batch_size, 1])).repeat()

    def export(network, model_dir):
        lam = np.geomspace(0.013, 77.0, 20).astype(np.float32)
        lam_vec = np.stack([np.ones_like(lam), lam], axis=-1)
        y = network.predict([np.ones([20, 1], np.float32), lam_vec], verbose=0)
        error = np.linalg.norm(y - toy.optimum(lam), axis=-1)
        logging.info("Distance to y*(lambda) at 20 held-out lambdas: max %.4f, mean %.4f",
                     error.max(), error.mean())

    return core.TrainTask(build_model, make_dataset, export=export, name="toy")


def main(argv):
    del argv
    core.train_from_flags(make_task())


if __name__ == "__main__":
    FLAGS.set_default("model_dir", "runs/toy")
    app.run(main)
