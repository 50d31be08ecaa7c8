"""The pre-rendered shapes pool and its batches (yoto_tf.beta_vae.pool)."""

import numpy as np
import pytest

from yoto_tf.beta_vae import pool, shapes


def test_pool_is_the_rendered_split_in_8_bits_whatever_the_worker_count(monkeypatch):
    monkeypatch.setattr(pool, "_CHUNK", 7)  # several chunks, the last one partial
    expected, _ = shapes.shape_images(range(20), 16, seed=3, split="test")
    alone = pool.render_pool(20, 16, seed=3, split="test", workers=1)
    assert alone.dtype == np.uint8 and alone.shape == (20, 16, 16, 3)
    np.testing.assert_array_equal(alone, np.rint(expected * 255).astype(np.uint8))
    # Two processes ("spawn": they import this module afresh, so _CHUNK is 2048 there).
    np.testing.assert_array_equal(pool.render_pool(20, 16, seed=3, split="test", workers=2), alone)
    assert not np.array_equal(pool.render_pool(20, 16, seed=4, split="test", workers=1), alone)


def test_pool_refuses_bad_requests():
    with pytest.raises(ValueError, match="num_examples must be positive, got 0"):
        pool.render_pool(0, 16)
    with pytest.raises(ValueError, match="Unknown shapes split 'holdout'"):
        pool.render_pool(4, 16, split="holdout")


def test_batches_visit_every_example_once_per_pass_in_a_seeded_order():
    images = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    batches = pool.PoolBatches(images, batch_size=3, seed=5)
    assert batches.num_batches is None  # endless: fit's steps_per_epoch decides
    ids = lambda batch: sorted(np.rint(batch[:, 0, 0, 0] * 255).astype(int).tolist())
    first_pass = [ids(batches[i]) for i in range(3)]  # 10 // 3 = 3 batches per pass
    seen = sum(first_pass, [])
    assert len(seen) == len(set(seen)) == 9  # no repeats; one example skipped this pass
    second_pass = [ids(batches[i]) for i in range(3, 6)]
    assert second_pass != first_pass  # reshuffled
    assert [ids(pool.PoolBatches(images, 3, seed=5)[i]) for i in range(6)] == first_pass + second_pass
    assert [ids(pool.PoolBatches(images, 3, seed=6)[i]) for i in range(3)] != first_pass
    batch = batches[0]
    assert batch.dtype == np.float32 and batch.shape == (3, 2, 2, 3) and batch.max() <= 1.0


def test_batches_refuse_a_bad_pool():
    with pytest.raises(ValueError, match=r"pool must be uint8 \[N, S, S, 3\], got float32"):
        pool.PoolBatches(np.zeros((4, 2, 2, 3), np.float32), 2)
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, 4\] \(the pool size\), got 5"):
        pool.PoolBatches(np.zeros((4, 2, 2, 3), np.uint8), 5)
