"""Scenes on a Dask cluster (sipsa_tf.scene.cluster, sipsa-pansharpen --workers/--pairs).

Two worker processes of a ``distributed.LocalCluster`` on localhost against the single-process
scene tool (the reference); a worker killed with SIGKILL in the middle of a run: Dask reruns its
tile and the output is complete and equal, or (with Dask's allowed-failures at 0) the run fails
with one sentence naming the scene and leaves no file behind.
"""
import os
import signal
import sys

import numpy as np
import pytest
import tifffile

from conftest import geotiff_tags, run_command, write_pair, write_random_checkpoint
from sipsa_tf import scene

distributed = pytest.importorskip("distributed")  # the [dask] extra, installed by make install
from sipsa_tf.scene import cluster  # noqa: E402

TILE = 64  # PAN pixels: 16 MS pixels, so a 48 x 48 MS scene gives 9 tiles
OPTIONS = dict(bands=(3, 1, 4), tile=TILE, tail_tile=48, out_type="float32", progress="off",
               threads=1)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """Two uint16 scenes (48 x 48 and 32 x 48 MS, 4 bands: 9 and 6 tiles), a random
    checkpoint, and the single-process outputs."""
    directory = tmp_path_factory.mktemp("cluster")
    checkpoint = write_random_checkpoint(str(directory / "model-1"), seed=7)
    rng = np.random.default_rng(21)
    scenes = []
    for i, (h, w) in enumerate(((48, 48), (32, 48))):
        ms = (rng.random((h, w, 4)) * 2047).astype(np.uint16)
        pan = (np.kron(ms.mean(axis=2), np.ones((4, 4))) * 0.7
               + 0.3 * 2047 * rng.random((4 * h, 4 * w))).astype(np.uint16)
        folder = directory / ("scene%d" % i)
        folder.mkdir()
        ms_path, pan_path = write_pair(str(folder), ms, pan,
                                       ms_options=dict(tile=(16, 16), compression="zlib"),
                                       pan_options=dict(extratags=geotiff_tags()))
        reference = str(folder / "single.tif")
        scene.pansharpen_scene(checkpoint, pan_path, ms_path, reference,
                               scene.SceneOptions(**OPTIONS))
        scenes.append((pan_path, ms_path, reference))
    return directory, checkpoint, scenes


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of two worker processes (one thread each) and its client."""
    c = cluster.start_client(workers=2)
    yield c
    c.close()
    c.cluster.close()


def _same(a, b):
    """max abs difference of two float32 outputs in [0, 1] units (11-bit DN)."""
    return float(np.abs(tifffile.imread(a) - tifffile.imread(b)).max()) / 2047


def test_two_workers_equal_one_process_and_pairs_run_as_one_job(case, client):
    directory, checkpoint, scenes = case
    pairs = directory / "pairs.csv"
    pairs.write_text("# pan,ms,out\n" + "".join(
        "%s,%s,%s\n" % (os.path.relpath(p, directory), os.path.relpath(m, directory),
                        "out%d.tif" % i) for i, (p, m, _) in enumerate(scenes)))
    jobs = cluster.read_pairs(str(pairs))
    summary = cluster.pansharpen_on_cluster(client, checkpoint, jobs,
                                            scene.SceneOptions(**OPTIONS), in_flight=3)
    assert summary["scenes"] == 2 and summary["tiles"] == 9 + 6
    assert sorted(summary["outputs"]) == [str(directory / "out0.tif"),
                                          str(directory / "out1.tif")]
    for i, (_, _, reference) in enumerate(scenes):
        assert _same(str(directory / ("out%d.tif" % i)), reference) <= 1e-6
    # both workers took tiles, and each built one tile model for the checkpoint
    models = client.run(lambda: len(cluster._MODELS))
    assert sorted(models.values()) == [1, 1]
    assert sorted(os.listdir(directory)) == ["model-1.data-00000-of-00001", "model-1.index",
                                             "out0.tif", "out1.tif", "pairs.csv", "scene0",
                                             "scene1"]


def test_pairs_without_a_cluster_run_one_after_another(case, tmp_path):
    directory, checkpoint, scenes = case
    jobs = [(p, m, str(tmp_path / ("out%d.tif" % i))) for i, (p, m, _) in enumerate(scenes)]
    summary = cluster.pansharpen_job(checkpoint, jobs, scene.SceneOptions(**OPTIONS))
    assert summary["scenes"] == 2 and summary["tiles"] == 9 + 6
    for (_, _, out), (_, _, reference) in zip(jobs, scenes):
        assert _same(out, reference) <= 1e-6


def _kill_one_busy_worker(client):
    """A callback for on_tile that SIGKILLs a worker process busy with a tile, once."""
    killed = []

    def on_tile(done, total):
        if killed:
            return
        busy = [w for w, keys in client.processing().items() if keys]
        if busy:
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return on_tile, killed


def test_a_killed_worker_is_replaced_and_the_output_is_complete(case, client, tmp_path):
    _, checkpoint, scenes = case
    pan_path, ms_path, reference = scenes[0]
    out = str(tmp_path / "out.tif")
    on_tile, killed = _kill_one_busy_worker(client)
    cluster.pansharpen_on_cluster(client, checkpoint, [(pan_path, ms_path, out)],
                                  scene.SceneOptions(**OPTIONS), on_tile=on_tile)
    assert killed
    assert _same(out, reference) <= 1e-6
    assert os.listdir(tmp_path) == ["out.tif"]


def test_a_worker_killed_past_the_allowed_failures_leaves_nothing(case, tmp_path):
    _, checkpoint, scenes = case
    pan_path, ms_path, _ = scenes[0]
    import dask
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        strict = cluster.start_client(workers=2)
    try:
        on_tile, killed = _kill_one_busy_worker(strict)
        with pytest.raises(scene.SceneError, match=r"out\.tif: tile \d+ of 9 was lost"):
            cluster.pansharpen_on_cluster(strict, checkpoint,
                                          [(pan_path, ms_path, str(tmp_path / "out.tif"))],
                                          scene.SceneOptions(**OPTIONS), on_tile=on_tile)
    finally:
        strict.close()
        strict.cluster.close()
    assert killed and os.listdir(tmp_path) == []


def test_bad_pairs_file_is_one_line(tmp_path):
    bad = tmp_path / "pairs.csv"
    bad.write_text("a.tif,b.tif\n")
    result = run_command([sys.executable, "-m", "sipsa_tf.pansharpen",  # bundled checkpoint
                          "--pairs=%s" % bad, "--workers=2"])
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: %s: line 1 must be pan,ms,out (three paths), got 'a.tif,b.tif'" % bad)


def test_product_inputs_through_pairs_on_the_cluster(case, client, tmp_path):
    """A --pairs line with a VRT PAN and a JPEG 2000 MS whose origin is half an MS pixel off
    (resampled onto the PAN's grid on the workers): equal to one process."""
    from conftest import require_executables
    translate, = require_executables("gdal_translate")
    _, checkpoint, scenes = case
    pan_tif, ms_tif, _ = scenes[0]  # 48 x 48 MS, not georeferenced
    pan, ms = str(tmp_path / "pan.vrt"), str(tmp_path / "ms.jp2")
    for args in (["-of", "VRT", "-a_srs", "EPSG:32633", "-a_ullr", "0", "192", "96", "0",
                  pan_tif, pan],
                 ["-of", "JP2OpenJPEG", "-co", "QUALITY=100", "-co", "REVERSIBLE=YES",
                  "-a_srs", "EPSG:32633", "-a_ullr", "1", "191", "97", "-1", ms_tif, ms]):
        done = run_command([translate, "-q"] + args, env={"GDAL_PAM_ENABLED": "NO"})
        assert done.returncode == 0, done.stderr
    (tmp_path / "pairs.csv").write_text("pan.vrt,ms.jp2,out.tif\n")
    jobs = cluster.read_pairs(str(tmp_path / "pairs.csv"))
    notes = []
    cluster.pansharpen_on_cluster(client, checkpoint, jobs, scene.SceneOptions(**OPTIONS),
                                  say=notes.append)
    assert len(notes) == 1 and "MS resampled onto the PAN's grid (bilinear)" in notes[0]
    reference = str(tmp_path / "single.tif")
    scene.pansharpen_scene(checkpoint, pan, ms, reference, scene.SceneOptions(**OPTIONS))
    assert tifffile.imread(reference).shape == (4 * 47, 4 * 47, 3)
    assert _same(str(tmp_path / "out.tif"), reference) <= 1e-6
