"""The port reproduces the numbers of the original code (../shared/fixtures/legacy_sipsa).

Tolerances are about 5x the differences measured here (2-core EPYC, TF 2.21 CPU): outputs
2.2e-7 and aligned MS 1.8e-7 (max abs, [0, 1] units), metric lists 8.6e-8 relative, training
loss 1.2e-6 relative; the same for the literal formulation.
"""
import os

import numpy as np
import pytest

from conftest import FIXTURE_DIR, require_shared
from sipsa_tf import Pansharpener

OUTPUT_TOL = 1e-6     # max abs, output and aligned MS
METRIC_RTOL = 5e-7    # the test metrics
LOSS_RTOL = 6e-6      # the training loss


@pytest.fixture(scope="module")
def fixture_data():
    require_shared("fixtures", "legacy_sipsa", "test_case.npz")
    test_case = np.load(os.path.join(FIXTURE_DIR, "test_case.npz"))
    batch = np.load(os.path.join(FIXTURE_DIR, "train_batch.npz"))
    return test_case, batch


@pytest.fixture(scope="module")
def pansharpener(fixture_data):
    with Pansharpener(os.path.join(FIXTURE_DIR, "model-100000")) as p:
        yield p


def test_outputs_reproduced(fixture_data, pansharpener):
    test_case, _ = fixture_data
    res = pansharpener(test_case["ms"], test_case["pan"])
    assert res["output"].shape == (128, 128, 3) and res["output"].dtype == np.float32
    assert np.abs(res["output"] - test_case["output"][0]).max() <= OUTPUT_TOL
    assert np.abs(res["aligned"] - test_case["aligned"][0]).max() <= OUTPUT_TOL


def test_metric_lists_reproduced(fixture_data, pansharpener):
    test_case, _ = fixture_data
    align_x, align_o = pansharpener.metric_lists(test_case["ms"], test_case["pan"])
    np.testing.assert_allclose(align_x, test_case["metrics_align_x"], rtol=METRIC_RTOL)
    np.testing.assert_allclose(align_o, test_case["metrics_align_o"], rtol=METRIC_RTOL)
    named = pansharpener.test_metrics(test_case["ms"], test_case["pan"])
    assert named["ergas"] == pytest.approx(float(test_case["metrics_align_x"][0]),
                                           rel=METRIC_RTOL)
    assert named["scc_aligned"] == pytest.approx(float(test_case["metrics_align_o"][1]),
                                                 rel=METRIC_RTOL)


def test_training_loss_reproduced(fixture_data, pansharpener):
    _, batch = fixture_data
    loss = pansharpener.training_loss(batch["ms"], batch["pan"])
    assert loss == pytest.approx(float(batch["loss"]), rel=LOSS_RTOL)


def test_literal_formulation_reproduces_too(fixture_data):
    test_case, batch = fixture_data
    with Pansharpener(FIXTURE_DIR, literal=True) as p:
        res = p(test_case["ms"], test_case["pan"])
        assert np.abs(res["output"] - test_case["output"][0]).max() <= OUTPUT_TOL
        assert np.abs(res["aligned"] - test_case["aligned"][0]).max() <= OUTPUT_TOL
        assert p.training_loss(batch["ms"], batch["pan"]) == pytest.approx(
            float(batch["loss"]), rel=LOSS_RTOL)


def test_per_sample_option_changes_the_loss(fixture_data):
    _, batch = fixture_data
    with Pansharpener(FIXTURE_DIR, per_sample=True) as p:
        assert p.training_loss(batch["ms"], batch["pan"]) > float(batch["loss"]) * (1 + 1e-4)
