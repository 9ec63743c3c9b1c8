"""What a training run writes besides checkpoints: the log, TensorBoard events, ``flags.txt``.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md ("Package layout") describes the original's semantics
as this port implements them. Re-exported by :mod:`sipsa_tf.training.loop`.
"""
import io
import os
import sys

import tensorflow as tf

from sipsa_tf.checkpoints import FLAGS_FILE
from sipsa_tf.utils import files

LOG_FILE = "train_log.txt"
SCALARS_FILE = "train_scalars.csv"
IMAGES_FOLDER = "Imgs"


class RunLog:
    """Writes lines to a log file (appending) and to a stream, as the original's save_log."""

    def __init__(self, path, stream=None):
        self.path = path
        self.stream = stream if stream is not None else sys.stdout
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")

    def __call__(self, line):
        self.stream.write(line + "\n")
        self.stream.flush()
        self._file.write(line + "\n")
        self._file.flush()

    def close(self):
        self._file.close()


class Summaries:
    """TensorBoard events written from Python values (scalars and uint8 images)."""

    def __init__(self, log_dir, graph):
        with graph.as_default():  # FileWriter refuses to start under eager execution
            self.writer = tf.compat.v1.summary.FileWriter(log_dir)

    def scalars(self, step, values):
        summary = tf.compat.v1.Summary(value=[
            tf.compat.v1.Summary.Value(tag=tag, simple_value=float(v))
            for tag, v in values.items()])
        self.writer.add_summary(summary, step)

    def images(self, step, images):
        from PIL import Image
        entries = []
        for tag, array in images.items():
            buffer = io.BytesIO()
            Image.fromarray(array).save(buffer, format="PNG")
            entries.append(tf.compat.v1.Summary.Value(tag=tag, image=tf.compat.v1.Summary.Image(
                height=array.shape[0], width=array.shape[1],
                colorspace=array.shape[2] if array.ndim == 3 else 1,
                encoded_image_string=buffer.getvalue())))
        self.writer.add_summary(tf.compat.v1.Summary(value=entries), step)

    def flush(self):
        self.writer.flush()

    def close(self):
        self.writer.close()


def write_flags(config, directories, log):
    text = config.to_flags()
    for directory in dict.fromkeys(directories):
        path = os.path.join(directory, FLAGS_FILE)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = f.read()
            if old != text:
                was = [line for line in old.splitlines() if line not in text.splitlines()]
                now = [line for line in text.splitlines() if line not in old.splitlines()]
                log("flags changed since the previous run in %s: was %s; now %s"
                    % (directory, " ".join(was) or "-", " ".join(now) or "-"))
        files.write_text(path, text)
