"""Primitive tensor operations of SIPSA-Net, as graph-mode TensorFlow ops.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021. docs/design.md describes what the original code computes with
them. All tensors are NHWC float32; the channel count must be static, the spatial size
may be dynamic.
"""
import numpy as np
import tensorflow as tf

from sipsa_tf.constants import FAM_KERNEL, FLAT_SHARE


def channels(x):
    """The static channel count of an NHWC tensor as an int (v1 and v2 shape behaviour)."""
    return int(x.shape.as_list()[-1])


def gaussian_kernel(size, sigma):
    """A normalised 2-D Gaussian on a centred integer grid (like MATLAB's ``fspecial``).

    Args:
        size: odd kernel width n.
        sigma: standard deviation in pixels.

    Returns:
        (n, n) float32 NumPy array summing to 1.
    """
    half = size // 2
    grid = np.arange(-half, size - half, dtype=np.float64)
    g = np.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / (2.0 * sigma ** 2))
    return (g / g.sum()).astype(np.float32)


def gauss_b_size(sigma):
    """Kernel width used by :func:`gauss_b`: the odd part of floor(6 sigma - 1), at least 3."""
    n = int(np.floor((6.0 * sigma - 1.0) / 2.0) * 2 + 1)
    return max(n, 3)


def _depthwise_reflect(x, kernel2d):
    """Applies the same 2-D kernel to every channel with REFLECT padding ('same' output size)."""
    size = kernel2d.shape[0]
    pad = (size - 1) // 2
    n_channels = channels(x)
    k = tf.constant(np.tile(kernel2d[:, :, None, None], (1, 1, n_channels, 1)))
    xp = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(xp, k, strides=[1, 1, 1, 1], padding="VALID")


def gauss(x, size):
    """n x n Gaussian blur, sigma = (n + 1) / 6, REFLECT padding.

    Args:
        x: (B, H, W, C) tensor; H and W must exceed (n - 1) / 2.
        size: odd kernel width n (5 and 9 are used).

    Returns:
        (B, H, W, C) tensor.
    """
    return _depthwise_reflect(x, gaussian_kernel(size, (size + 1) / 6.0))


def gauss_b(x, sigma):
    """Gaussian blur of a given sigma; width from :func:`gauss_b_size`; REFLECT padding."""
    return _depthwise_reflect(x, gaussian_kernel(gauss_b_size(sigma), sigma))


def satdown(x, scale=4):
    """Satellite degradation model: per-channel ``gauss_b(1/scale)``, then s x s block means.

    Args:
        x: (B, s*h, s*w, C) tensor.
        scale: integer ratio s.

    Returns:
        (B, h, w, C) tensor.
    """
    y = gauss_b(x, 1.0 / scale)
    return tf.nn.avg_pool2d(y, ksize=scale, strides=scale, padding="VALID")


def upsample_nearest(x, scale=4):
    """Nearest-neighbour upsampling: each pixel becomes an s x s block. (B,h,w,C)->(B,sh,sw,C)."""
    return tf.repeat(tf.repeat(x, scale, axis=1), scale, axis=2)


def resize_blur(x, scale=4):
    """Nearest upsampling followed by a 5 x 5 Gaussian blur. (B,h,w,C)->(B,sh,sw,C)."""
    return gauss(upsample_nearest(x, scale), 5)


def sobel2(x):
    """Forward differences with REFLECT padding, two outputs per channel in the order (v, h).

    ``v[i, j] = x[i, j] - x[i + 1, j]`` and ``h[i, j] = x[i, j] - x[i, j + 1]``; at the last
    row/column the reflected neighbour is ``x[i - 1]``.

    Args:
        x: (B, H, W, C) tensor, H, W >= 2.

    Returns:
        (B, H, W, 2C) tensor, channels interleaved c0_v, c0_h, c1_v, c1_h, ...
    """
    n_channels = channels(x)
    xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    centre = xp[:, 1:-1, 1:-1, :]
    vertical = centre - xp[:, 2:, 1:-1, :]
    horizontal = centre - xp[:, 1:-1, 2:, :]
    stacked = tf.stack([vertical, horizontal], axis=-1)
    shape = tf.shape(x)
    return tf.reshape(stacked, tf.concat([shape[:3], [2 * n_channels]], axis=0))


def lrelu(x, leak=0.1):
    """Leaky ReLU, max(x, leak * x)."""
    return tf.maximum(x, leak * x)


def space_to_depth(x, scale=4):
    """(B, sh, sw, C) -> (B, h, w, s*s*C), TensorFlow's block order."""
    return tf.nn.space_to_depth(x, scale)


def _fam_taps(size=FAM_KERNEL):
    """(tap index, dy, dx) for every tap of the local kernel, tap = size * a + b."""
    half = size // 2
    return [(size * a + b, a - half, b - half) for a in range(size) for b in range(size)]


def fam_offsets(size=FAM_KERNEL):
    """(size * size, 2) float32 NumPy array: the (dy, dx) of every FAM tap, in MS pixels."""
    return np.array([(dy, dx) for _, dy, dx in _fam_taps(size)], np.float32)


def fam_displacement(kernel):
    """The FAM's soft displacement D = sum_k p_k (dy_k, dx_k), in MS pixels.

    The FAM reads output pixel (i, j) from features at (i + dy, j + dx) with weight p_k, so D
    points from a pixel to where, in the MS, the content it receives lies: for an MS whose
    content is shifted by +s (``np.roll(ms, s)``), the ideal D is +s.

    Args:
        kernel: (B, h, w, 81) softmax weights (:attr:`sipsa_tf.core.model.Forward.kernel`).

    Returns:
        (B, h, w, 2) float32, (dy, dx) in MS pixels, each in [-4, 4].
    """
    return tf.tensordot(kernel, tf.constant(fam_offsets()), axes=[[3], [0]])


def fam_alignment(kernel):
    """What the FAM does per pixel: {"displacement": (B, h, w, 2) :func:`fam_displacement`,
    "max_tap": (B, h, w) the largest of the 81 softmax weights (1 = one-hot)}."""
    return {"displacement": fam_displacement(kernel), "max_tap": tf.reduce_max(kernel, axis=3)}


def _windows(xp, half):
    """Windows of a zero-padded map: ``window(dy, dx)`` holds x[i + dy, j + dx] at (i, j).

    ``window(dy, dx, channel)`` takes that one channel only. The windows' size is computed once
    and shared, so each window is one ``Slice`` op (the FAM takes 81 of them; building them
    with Python slices of dynamic bounds made most of the inference graph's ops and of its
    build time).
    """
    shape = tf.shape(xp)
    inner = [shape[0], shape[1] - 2 * half, shape[2] - 2 * half]
    sizes = {None: tf.stack(inner + [shape[3]]), "one": tf.stack(inner + [1])}
    static = xp.shape.as_list()

    def window(dy, dx, channel=None):
        out = tf.slice(xp, [0, half + dy, half + dx, 0 if channel is None else channel],
                       sizes[None if channel is None else "one"])
        out.set_shape([static[0], None, None, static[3] if channel is None else 1])
        return out

    return window


def local_conv_literal(features, kernel):
    """Feature alignment module built as the original builds it: explicit patch tensors.

    Same op sequence as the original: 9 x 9 patches extracted, split into 81 maps and stacked to
    (B, H, W, 81, C); the kernel tiled to (B, H, W, 81, C); multiplied; summed over the taps.
    Kept as the reference for :func:`local_conv` and for memory/speed comparisons.

    Args:
        features: (B, H, W, C) tensor f.
        kernel: (B, H, W, 81) tensor K (softmax weights).

    Returns:
        (B, H, W, C): out[i,j,c] = sum_{a,b} K[i,j,9a+b] * f[i+a-4, j+b-4, c], zero outside.
    """
    size = FAM_KERNEL
    n_channels = channels(features)
    patches = tf.image.extract_patches(features, sizes=[1, size, size, 1],
                                       strides=[1, 1, 1, 1], rates=[1, 1, 1, 1], padding="SAME")
    patches = tf.stack(tf.split(patches, size * size, axis=3), axis=3)  # (B, H, W, 81, C)
    weights = tf.tile(kernel[..., None], [1, 1, 1, 1, n_channels])  # (B, H, W, 81, C)
    return tf.reduce_sum(patches * weights, axis=3)


def _sequential_sum(term_fns):
    """Sums ``fn()`` over ``term_fns`` in order, each term made only after the previous sum.

    The control dependencies keep Grappler from merging the chain of adds into one AddN that
    would hold every term in memory at once (81 feature maps for the FAM); at most a few terms
    are alive. Same terms, same order, so the float32 sum is the plain left-to-right one.
    """
    out = None
    for fn in term_fns:
        with tf.control_dependencies([] if out is None else [out]):
            term = fn()
        out = term if out is None else out + term
    return out


def _local_conv_forward(features, kernel, half):
    window = _windows(tf.pad(features, [[0, 0], [half, half], [half, half], [0, 0]]), half)
    return _sequential_sum(
        (lambda t=tap, y=dy, x=dx: kernel[..., t:t + 1] * window(y, x))
        for tap, dy, dx in _fam_taps(2 * half + 1))


@tf.custom_gradient
def _local_conv_lean(features, kernel):
    half = FAM_KERNEL // 2
    out = _local_conv_forward(features, kernel, half)

    def grad(upstream):
        # d kernel[..., t] = sum_c g * f_shift_t ; d f = sum_t shift_back(K_t * g).
        f_window = _windows(tf.pad(features, [[0, 0], [half, half], [half, half], [0, 0]]),
                            half)
        taps = _fam_taps()
        d_kernel = tf.concat(
            [tf.reduce_sum(upstream * f_window(dy, dx), axis=3, keepdims=True)
             for _, dy, dx in taps], axis=3)
        g_window = _windows(tf.pad(upstream, [[0, 0], [half, half], [half, half], [0, 0]]), half)
        k_window = _windows(tf.pad(kernel, [[0, 0], [half, half], [half, half], [0, 0]]), half)
        # f[p] receives K[p - d, t] * g[p - d] for every output pixel p - d that reads it.
        d_features = _sequential_sum(
            (lambda t=tap, y=dy, x=dx: k_window(-y, -x, t) * g_window(-y, -x))
            for tap, dy, dx in taps)
        return d_features, d_kernel

    return out, grad


def local_conv(features, kernel):
    """Feature alignment module (FAM): a per-pixel 9 x 9 convolution, without a patch tensor.

    Same result as :func:`local_conv_literal` (tested), built from 81 shifted multiply-adds with
    a matching hand-written gradient, so that neither the forward pass nor backpropagation keeps
    an (H, W, 81, C) tensor; the products are summed one after another, so only a few
    (H, W, C) maps are alive at a time.

    Args:
        features: (B, H, W, C) float32 tensor.
        kernel: (B, H, W, 81) float32 tensor, tap index 9a + b for offset (a - 4, b - 4).

    Returns:
        (B, H, W, C) float32 tensor.
    """
    return _local_conv_lean(features, kernel)


def fam_mirrored(fam, values, kernel):
    """A FAM op applied to maps that have no neutral value, reading mirrored values beyond the
    image instead of the zeros the FAM reads there.

    Used to move the MS's local statistics with the FAM's weights (``--align_statistics``,
    :func:`sipsa_tf.core.model.forward`): a zero local mean at the border would pull the
    de-normalised output to black there.

    Args:
        fam: the FAM op (:func:`local_conv`, :func:`local_conv_fused` or
            :func:`local_conv_literal`).
        values: (B, H, W, C) float32, H and W > 4 (the mirror reads 4 pixels in).
        kernel: (B, H, W, 81) FAM weights.

    Returns:
        (B, H, W, C) float32: per pixel sum_k kernel_k x values at the tap's offset.
    """
    half = FAM_KERNEL // 2
    pad = [[0, 0], [half, half], [half, half], [0, 0]]
    out = fam(tf.pad(values, pad, mode="SYMMETRIC"), tf.pad(kernel, pad))
    return out[:, half:-half, half:-half, :]


def fill_flat(kernel, pan, scale, share=FLAT_SHARE, window=FAM_KERNEL):
    """FAM weights with the least-textured pixels given the image's mean weights.

    Where the PAN hardly varies around a pixel, no displacement can be read from the image
    (the aperture problem), and a kernel branch reports one it learnt elsewhere. This gives the
    ``share`` of MS pixels with the lowest texture (std / mean of the PAN's ``scale`` x ``scale``
    block means over ``window`` x ``window`` MS pixels, edges mirrored; the NumPy twin is
    :func:`sipsa_tf.evaluation.alignment.texture`) the mean of the kernel over the other pixels
    of the same image: the displacement the textured part reads (docs/training.md,
    ``--fam_flat_mean``).

    Args:
        kernel: (B, h, w, 81) float32 softmax weights; h, w > window // 2.
        pan: (B, scale h, scale w, 1) float32 PAN (any positive scale; only ratios matter).
        scale: the PAN/MS resolution ratio.
        share: in (0, 1).
        window: odd, MS pixels.

    Returns:
        (B, h, w, 81) float32 weights, still summing to 1 per pixel.
    """
    half = window // 2
    p = tf.nn.avg_pool2d(tf.cast(pan, tf.float64), scale, scale, "VALID")
    p = tf.pad(p, [[0, 0], [half, half], [half, half], [0, 0]], mode="REFLECT")
    mean = tf.nn.avg_pool2d(p, window, 1, "VALID")
    var = tf.nn.avg_pool2d(p * p, window, 1, "VALID") - tf.square(mean)
    var = tf.where(var > 1e-12 * tf.square(mean), var, tf.zeros_like(var))
    texture = tf.sqrt(var) / (tf.abs(mean) + 1e-6)  # (B, h, w, 1)
    flat = tf.reshape(texture, [tf.shape(texture)[0], -1])
    ordered = tf.sort(flat, axis=1)
    position = share * tf.cast(tf.shape(ordered)[1] - 1, tf.float64)
    low = tf.cast(tf.floor(position), tf.int32)
    high = tf.minimum(low + 1, tf.shape(ordered)[1] - 1)
    frac = position - tf.floor(position)
    threshold = ordered[:, low] + frac * (ordered[:, high] - ordered[:, low])  # np.quantile
    mask = tf.cast(texture <= threshold[:, None, None, None], kernel.dtype)
    keep = 1.0 - mask
    mean_kernel = (tf.reduce_sum(kernel * keep, axis=(1, 2), keepdims=True)
                   / tf.maximum(tf.reduce_sum(keep, axis=(1, 2), keepdims=True), 1.0))
    return kernel * keep + mean_kernel * mask


def local_conv_fused(features, kernel):
    """The FAM of :func:`local_conv` compiled by XLA into one loop: the fast inference FAM.

    The 81 window-multiply-adds are marked for XLA (``jit_scope``), which fuses them into a
    single pass that reads each feature map from cache instead of writing and re-reading 81
    (H, W, C) products (a 256 x 256 x 64 map on 2 CPU cores: 0.21 s -> 0.02 s). The numbers
    equal :func:`local_conv` to float32 rounding (tested). XLA compiles the cluster once per
    input shape, lazily: the first run with a new shape takes TensorFlow's ordinary kernels, a
    later one compiles (about 0.3 s on 2 cores) and then reuses the compiled code. Used by the
    inference graphs; training keeps :func:`local_conv` and its hand-written gradient.

    Args:
        features: (B, H, W, C) float32 tensor.
        kernel: (B, H, W, 81) float32 tensor, as for :func:`local_conv`.

    Returns:
        (B, H, W, C) float32 tensor.
    """
    with tf.compat.v1.xla.experimental.jit_scope():
        return local_conv(features, kernel)
