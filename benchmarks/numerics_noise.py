"""How far this CPU path's float32 numbers are from the original's (SIPSA-Net, CVPR 2021).

    .venv/bin/python benchmarks/numerics_noise.py [--fixture ../shared/fixtures/legacy_sipsa]
    ONEDNN_MAX_CPU_ISA=AVX2 TF_XLA_FLAGS=--tf_xla_clustering_fuel=0 \\
        .venv/bin/python benchmarks/numerics_noise.py

The tolerances of tests/test_fixture.py must sit well above the noise of every CPU path (oneDNN's
ISA cap, oneDNN off, XLA on or off; docs/design.md, "Numerical noise") and well below the effect
of a real defect. This prints, for the path the environment selects, the differences between the
port and the numbers the original code wrote into the fixture: max |output - original| and
max |aligned - original| ([0, 1] units), the largest relative difference of the two metric lists,
and the relative difference of the training loss, beside the test's tolerances, plus one defect
for scale: the same output with the network's input MS shifted by one MS pixel.

Prints one JSON line (the environment's path and the numbers).
"""
import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FIXTURE = os.path.join(os.path.dirname(REPO), "shared", "fixtures", "legacy_sipsa")


def _relative(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def measure(fixture):
    """The differences described in the module docstring, as a dict."""
    from sipsa_tf import Pansharpener
    test_case = np.load(os.path.join(fixture, "test_case.npz"))
    batch = np.load(os.path.join(fixture, "train_batch.npz"))
    with Pansharpener(os.path.join(fixture, "model-100000")) as p:
        res = p(test_case["ms"], test_case["pan"])
        align_x, align_o = p.metric_lists(test_case["ms"], test_case["pan"])
        loss = p.training_loss(batch["ms"], batch["pan"])
        shifted = p(np.roll(test_case["ms"], 1, axis=-3), test_case["pan"])
    return {
        "output_max_abs": float(np.abs(res["output"] - test_case["output"][0]).max()),
        "aligned_max_abs": float(np.abs(res["aligned"] - test_case["aligned"][0]).max()),
        "metrics_max_rel": max(_relative(align_x, test_case["metrics_align_x"]),
                               _relative(align_o, test_case["metrics_align_o"])),
        "loss_rel": _relative(loss, batch["loss"]),
        "defect_ms_rolled_1px_output_max_abs": float(
            np.abs(shifted["output"] - test_case["output"][0]).max()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fixture", default=DEFAULT_FIXTURE)
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.fixture, "test_case.npz")):
        sys.exit("error: %s: no test_case.npz (the original's fixture)" % args.fixture)
    path = {k: os.environ.get(k, "") for k in ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS",
                                                "TF_XLA_FLAGS")}
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from test_fixture import LOSS_RTOL, METRIC_RTOL, OUTPUT_TOL
    print(json.dumps({"path": path, "measured": measure(args.fixture),
                      "tolerances": {"output": OUTPUT_TOL, "metrics_rel": METRIC_RTOL,
                                     "loss_rel": LOSS_RTOL}}))


if __name__ == "__main__":
    main()
