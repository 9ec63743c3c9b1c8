"""The evaluation's tables: ``results.csv`` and the Markdown report.

Part of the evaluation suite (:mod:`sipsa_tf.evaluation`; docs/design.md, "Metrics and test
images").
"""
import collections
import csv
import io

import numpy as np

from sipsa_tf.evaluation.methods import SIPSA_METHODS
from sipsa_tf.evaluation.protocols import FULL_INDICES, INDICES, REDUCED_INDICES
from sipsa_tf.utils import files


# True: higher is better (ideal 1), False: lower is better (ideal 0).
HIGHER_IS_BETTER = {"q2n": True, "q": True, "sam": False, "ergas": False, "scc": True,
                    "d_lambda": False, "d_s": False, "qnr": True, "d_lambda_khan": False,
                    "hqnr": True, "ghost": False, "ghost_moving": False}
LABELS = {"q2n": "Q2n", "q": "Q", "sam": "SAM (deg)", "ergas": "ERGAS", "scc": "SCC",
          "d_lambda": "D_lambda", "d_s": "D_s", "qnr": "QNR", "d_lambda_khan": "D_lambda(K)",
          "hqnr": "HQNR", "ghost": "ghost", "ghost_moving": "ghost (moving)"}
CSV_COLUMNS = ("image", "sensor", "protocol", "method") + REDUCED_INDICES + FULL_INDICES + (
    "seconds",)


def atomic_write(path, payload):
    """Writes bytes to ``path`` atomically (:func:`sipsa_tf.utils.files.write_bytes`)."""
    return files.write_bytes(path, payload)


def write_csv(rows, path, columns=CSV_COLUMNS):
    """Rows as CSV (numbers with 6 significant digits; empty where an index does not apply)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["%.6g" % row[c] if isinstance(row.get(c), float) else row.get(c, "")
                         for c in columns])
    return atomic_write(path, out.getvalue().encode("utf-8"))


def _fmt(value):
    return "" if value is None else ("%.4f" % value if abs(value) < 10 else "%.2f" % value)


def markdown_table(rows, keys, columns, label_of=None):
    """A Markdown table with one line per distinct value of ``keys`` (means over the rest).

    Args:
        rows: row dicts.
        keys: tuple of row fields that identify a line (e.g. ("method",)).
        columns: numeric fields to average.
        label_of: optional dict of column headers.

    Returns:
        str, the best value of each column in bold (by ``HIGHER_IS_BETTER``).
    """
    label_of = label_of or LABELS
    groups = collections.OrderedDict()
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    means = {g: {c: float(np.mean([r[c] for r in rs])) for c in columns}
             for g, rs in groups.items()}
    best = {}
    for c in columns:
        values = [m[c] for m in means.values()]
        if c in HIGHER_IS_BETTER and values:
            best[c] = max(values) if HIGHER_IS_BETTER[c] else min(values)
    arrows = {c: (" ↑" if HIGHER_IS_BETTER[c] else " ↓") if c in HIGHER_IS_BETTER else ""
              for c in columns}
    lines = ["| %s | %s |" % (" | ".join(keys), " | ".join(label_of.get(c, c) + arrows[c]
                                                           for c in columns)),
             "|" + " --- |" * (len(keys) + len(columns))]
    for g, m in means.items():
        cells = [("**%s**" if best.get(c) == m[c] else "%s") % _fmt(m[c]) for c in columns]
        lines.append("| %s | %s |" % (" | ".join(str(v) for v in g), " | ".join(cells)))
    return "\n".join(lines) + "\n"


# Said under every full-resolution table: the no-reference indices can rank methods that add no
# detail first.
QNR_CAVEAT = ("QNR and HQNR reward fused images that keep the MS's spectra and the PAN's large-"
              "scale structure; a method that adds no PAN detail (nearest, bicubic) changes "
              "neither, so it scores well: read these columns with the reduced-resolution "
              "table and the panels, not alone.")


def markdown_report(rows, scenes, methods, protocols, notes=(), title="Evaluation"):
    """The Markdown report: mean tables per protocol, per-image tables, notes."""
    parts = ["# %s\n" % title]
    descriptions = {
        "reduced": "Reduced resolution (Wald protocol: PAN and MS degraded by 4 with the "
                   "sensor MTF, fused, compared with the original MS)",
        "full": "Full resolution (no reference: QNR and HQNR)"}
    for protocol in protocols:
        sub = [r for r in rows if r["protocol"] == protocol]
        if not sub:
            continue
        cols = INDICES[protocol] + ("seconds",)
        parts.append("## %s, mean over %d image(s)\n" % (descriptions[protocol], len(scenes)))
        parts.append(markdown_table(sub, ("method",), cols))
        if protocol == "full":
            parts.append(QNR_CAVEAT + "\n")
    for protocol in protocols:
        sub = [r for r in rows if r["protocol"] == protocol]
        if len(scenes) > 1 and sub:
            parts.append("## Per image, %s resolution\n" % protocol)
            parts.append(markdown_table(sub, ("image", "method"), INDICES[protocol]))
    lines = ["## Notes\n", "- Images: " + "; ".join(
        "%s (%s, MS %dx%d%s)" % (s.name, s.sensor or "generic MTF", s.ms.shape[0], s.ms.shape[1],
                                 ", " + s.note if s.note else "") for s in scenes)]
    if any(n in methods.names for n in SIPSA_METHODS):
        lines.append("- SIPSA-Net starts from: %s" % methods.source())
    if methods.adaptation:
        a = methods.adaptation
        lines.append("- sipsa_adapted: %d steps per image and protocol, %s; mean %.1f s per "
                     "adaptation; loss before -> after (mean over fixed crops): %s" % (
                         methods.adapt_steps, ", ".join("%s=%s" % kv for kv in sorted(
                             {**methods._adapter_options, **methods._adapt_options}.items()))
                         or "default settings", float(np.mean([x["seconds"] for x in a])),
                         "; ".join("%s/%s %.3f -> %.3f" % (x["image"], x["protocol"],
                                                           x["loss_before"], x["loss_after"])
                                   for x in a)))
    if methods.gdal_version:
        lines.append("- gdal: %s, weighted Brovey with equal weights, cubic resampling of the MS"
                     % methods.gdal_version)
    for name, reason in methods.skipped.items():
        lines.append("- %s skipped: %s" % (name, reason))
    lines += ["- %s" % n for n in notes]
    lines.append("- seconds: wall time of one fusion on this machine (for sipsa_adapted "
                 "including the adaptation).")
    parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
