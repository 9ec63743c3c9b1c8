"""Independent NumPy implementations of SIPSA-Net's operations, written from SPEC.md.

Plain loops and explicit index arithmetic, deliberately unlike the TensorFlow code under test.
Arrays are (H, W, C) float64 unless stated.
"""
import numpy as np


def gaussian_kernel(n, sigma):
    k = np.zeros((n, n))
    c = (n - 1) // 2
    for i in range(n):
        for j in range(n):
            k[i, j] = np.exp(-((i - c) ** 2 + (j - c) ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def reflect_index(i, n):
    """Index into a length-n axis with REFLECT (mirror without repeating the edge) padding."""
    while i < 0 or i >= n:
        if i < 0:
            i = -i
        if i >= n:
            i = 2 * (n - 1) - i
    return i


def filter_reflect(x, k):
    h, w, c = x.shape
    n = k.shape[0]
    r = n // 2
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            acc = np.zeros(c)
            for a in range(n):
                for b in range(n):
                    acc += k[a, b] * x[reflect_index(i + a - r, h), reflect_index(j + b - r, w)]
            out[i, j] = acc
    return out


def gauss(x, n):
    return filter_reflect(x, gaussian_kernel(n, (n + 1) / 6.0))


def gauss_b(x, sigma):
    n = max(3, int(np.floor((6 * sigma - 1) / 2)) * 2 + 1)
    return filter_reflect(x, gaussian_kernel(n, sigma))


def satdown(x, s=4):
    y = gauss_b(x, 1.0 / s)
    h, w, c = y.shape
    out = np.zeros((h // s, w // s, c))
    for i in range(h // s):
        for j in range(w // s):
            out[i, j] = y[i * s:(i + 1) * s, j * s:(j + 1) * s].reshape(-1, c).mean(axis=0)
    return out


def up(x, s=4):
    h, w, c = x.shape
    out = np.zeros((h * s, w * s, c))
    for i in range(h * s):
        for j in range(w * s):
            out[i, j] = x[i // s, j // s]
    return out


def resize_blur(x, s=4):
    return gauss(up(x, s), 5)


def sobel2(x):
    h, w, c = x.shape
    out = np.zeros((h, w, 2 * c))
    for i in range(h):
        for j in range(w):
            below = x[reflect_index(i + 1, h), j]
            right = x[i, reflect_index(j + 1, w)]
            out[i, j, 0::2] = x[i, j] - below
            out[i, j, 1::2] = x[i, j] - right
    return out


def space_to_depth(x, s=4):
    h, w, c = x.shape
    out = np.zeros((h // s, w // s, s * s * c))
    for i in range(h // s):
        for j in range(w // s):
            for a in range(s):
                for b in range(s):
                    out[i, j, (a * s + b) * c:(a * s + b + 1) * c] = x[i * s + a, j * s + b]
    return out


def local_conv(f, k):
    h, w, c = f.shape
    out = np.zeros((h, w, c))
    for i in range(h):
        for j in range(w):
            for a in range(9):
                for b in range(9):
                    y, x = i + a - 4, j + b - 4
                    if 0 <= y < h and 0 <= x < w:
                        out[i, j] += k[i, j, 9 * a + b] * f[y, x]
    return out


def mean_std(x):
    m = gauss(x, 9)
    q = gauss(x * x, 9)
    return m, np.sqrt(np.abs(q - m * m) + 1e-4)


def shifted_min(y, ref, shifts, per_sample=False):
    """y, ref: (B, H, W, C). Min over shifts (and batch) of |y[b] - roll(ref[b], t)|."""
    diffs = np.stack([np.abs(y - np.roll(ref, shift=t, axis=(1, 2))) for t in shifts])
    if per_sample:
        return diffs.min(axis=0)
    return diffs.min(axis=(0, 1))


# ---- the original's metrics -------------------------------------------------------------

def ergas(x, r, s=4):
    """x, r: (B, H, W, C)."""
    vals = []
    for b in range(x.shape[0]):
        per_c = [np.mean((r[b, ..., c] - x[b, ..., c]) ** 2) / (np.mean(r[b, ..., c]) ** 2 + 1e-10)
                 for c in range(x.shape[-1])]
        vals.append(100.0 / s * np.sqrt(np.mean(per_c) + 1e-10))
    return float(np.mean(vals))


def sobel_metric(x):
    """(H, W) zero-padded cross-correlation with [[1,2,1],[0,0,0],[-1,-2,-1]]."""
    k = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)
    xp = np.pad(x, 1)
    h, w = x.shape
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            out[i, j] = np.sum(k * xp[i:i + 3, j:j + 3])
    return out


def scc(x, pan):
    vals = []
    for b in range(x.shape[0]):
        gp = sobel_metric(pan[b, ..., 0])
        gx = [sobel_metric(x[b, ..., c]) for c in range(x.shape[-1])]
        m12 = sum(np.sum(g * gp) for g in gx)
        m11 = sum(np.sum(g * g) for g in gx)
        m22 = len(gx) * np.sum(gp * gp)
        vals.append(m12 / np.sqrt(m22 + 1e-10) / np.sqrt(m11 + 1e-10))
    return float(np.mean(vals))


def q_channel(y, x, n=32):
    """Q of two (H, W) arrays, REFLECT-padded to a multiple of n, non-overlapping blocks."""
    h, w = y.shape
    ph = -h % n
    pw = -w % n
    pads = ((int(np.ceil(ph / 2)), ph - int(np.ceil(ph / 2))),
            (int(np.ceil(pw / 2)), pw - int(np.ceil(pw / 2))))
    yp = np.pad(y, pads, mode="reflect")
    xp = np.pad(x, pads, mode="reflect")
    qs = []
    for i in range(0, yp.shape[0], n):
        for j in range(0, yp.shape[1], n):
            a = yp[i:i + n, j:j + n].ravel()
            c = xp[i:i + n, j:j + n].ravel()
            ma, mc = a.mean(), c.mean()
            cov = np.mean((a - ma) * (c - mc))
            va, vc = np.var(a), np.var(c)
            qs.append(4 * cov * ma * mc / ((va + vc) * (ma * ma + mc * mc) + 1e-16))
    return float(np.mean(qs))


def q_mean(y, x):
    return float(np.mean([[q_channel(y[b, ..., c], x[b, ..., c]) for c in range(y.shape[-1])]
                          for b in range(y.shape[0])]))


def d_lambda(ps, ms):
    c = ps.shape[-1]
    vals = []
    for b in range(ps.shape[0]):
        total = 0.0
        for i in range(c):
            for j in range(c):
                total += abs(q_channel(ps[b, ..., i], ps[b, ..., j])
                             - q_channel(ms[b, ..., i], ms[b, ..., j]))
        vals.append(total / (c * (c - 1)))
    return float(np.mean(vals))


def d_s(ps, pan, ms):
    vals = []
    for b in range(ps.shape[0]):
        pan_low = satdown(pan[b])[..., 0]
        for c in range(ps.shape[-1]):
            vals.append(abs(q_channel(ps[b, ..., c], pan[b, ..., 0])
                            - q_channel(ms[b, ..., c], pan_low)))
    return float(np.mean(vals))


def qnr(ps, pan, ms):
    return abs(1 - d_lambda(ps, ms)) * abs(1 - d_s(ps, pan, ms))
