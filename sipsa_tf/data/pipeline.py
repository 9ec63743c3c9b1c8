"""The training data stream: random crops, augmentation and the tf.data pipeline.

Part of :mod:`sipsa_tf.data` (layouts described there; docs/design.md, "Training data").
"""
import numpy as np

from sipsa_tf.constants import IMG_DIV, MS_BANDS, SCALE
from sipsa_tf.data.checks import load_pair


def random_crops(ms, pan, n, patch, rng):
    """``n`` random crops: MS ``patch`` x ``patch`` and PAN 4x that at the same place.

    Offsets are whole MS pixels, uniform over every position (the original's crop).

    Returns:
        ((n, patch, patch, 3), (n, 4 patch, 4 patch, 1)) float32 arrays.
    """
    h, w = ms.shape[:2]
    ys = rng.integers(0, h - patch + 1, size=n)
    xs = rng.integers(0, w - patch + 1, size=n)
    big = SCALE * patch
    ms_crops = np.stack([ms[y:y + patch, x:x + patch] for y, x in zip(ys, xs)])
    pan_crops = np.stack([pan[SCALE * y:SCALE * y + big, SCALE * x:SCALE * x + big]
                          for y, x in zip(ys, xs)])
    return ms_crops, pan_crops



def augment_batch(ms, pan, seed):
    """One random left-right flip and one random rot90 (k in 0..3), shared by the whole batch.

    Args:
        ms: (B, p, p, C) tensor; pan: (B, 4p, 4p, 1) tensor.
        seed: shape [2] int tensor for the stateless random draws.

    Returns:
        The augmented (ms, pan).
    """
    import tensorflow as tf
    draws = tf.random.stateless_uniform([2], seed=seed, minval=0, maxval=8, dtype=tf.int32)
    flip = draws[0] % 2
    k = draws[1] % 4

    def apply(x):
        x = tf.cond(flip > 0, lambda: tf.reverse(x, axis=[2]), lambda: x)
        return tf.image.rot90(x, k)

    return apply(ms), apply(pan)



def training_dataset(pairs, patch, crops_per_image=30, batch_size=4, readers=6,
                     shuffle_buffer=300, img_div=IMG_DIV, seed=0, augment=True):
    """The original's training pipeline as tf.data: infinite, batched, augmented.

    Images are drawn in a random order (a new permutation of ``pairs`` on every pass; the
    original draws with replacement), ``readers`` of them are read in parallel, each gives
    ``crops_per_image`` random crops, crops are shuffled in a buffer of ``shuffle_buffer`` and
    batched; each batch gets one random flip + rot90 shared by MS and PAN.

    Args:
        pairs: list of :class:`Pair`, already checked with :func:`check_pairs`.
        patch: MS crop size p (PAN crops are 4p).
        crops_per_image, batch_size, readers, shuffle_buffer: as above.
        img_div: values are DN / img_div.
        seed: makes the stream deterministic.
        augment: apply the flip/rot90 augmentation.

    Returns:
        ``tf.data.Dataset`` of (ms (B, p, p, 3), pan (B, 4p, 4p, 1)) float32.
    """
    import tensorflow as tf
    pairs = list(pairs)
    n = len(pairs)
    big = SCALE * patch

    def load(index, draw):
        ms, pan = load_pair(pairs[int(index)], img_div)
        rng = np.random.default_rng([seed, int(draw)])
        return random_crops(ms, pan, crops_per_image, patch, rng)

    def crops(index, draw):
        ms, pan = tf.numpy_function(load, [index, draw], [tf.float32, tf.float32],
                                    stateful=False)
        ms.set_shape([crops_per_image, patch, patch, MS_BANDS])
        pan.set_shape([crops_per_image, big, big, 1])
        return tf.data.Dataset.from_tensor_slices((ms, pan))

    order = (tf.data.Dataset.range(n)
             .shuffle(n, seed=seed, reshuffle_each_iteration=True)
             .repeat())
    draws = tf.data.Dataset.zip((order, tf.data.Dataset.range(np.iinfo(np.int64).max)))
    ds = draws.interleave(crops, cycle_length=readers, block_length=1,
                          num_parallel_calls=readers, deterministic=True)
    ds = ds.shuffle(shuffle_buffer, seed=seed + 1).batch(batch_size, drop_remainder=True)
    if augment:
        counter = tf.data.Dataset.range(np.iinfo(np.int64).max)
        ds = tf.data.Dataset.zip((ds, counter)).map(
            lambda batch, i: augment_batch(batch[0], batch[1],
                                           tf.stack([tf.constant(seed, tf.int64), i])))
    return ds.prefetch(2)
