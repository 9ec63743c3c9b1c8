"""Scenes on a Dask cluster (sipsa_tf.scene.cluster, sipsa-pansharpen --workers/--pairs).

Two worker processes of a ``distributed.LocalCluster`` on localhost against the single-process
scene tool (the reference); a worker killed with SIGKILL in the middle of a run: Dask reruns its
tile and the output is complete and equal, or (with Dask's allowed-failures at 0) the run fails
with one sentence naming the scene and leaves no file behind. The same for workers out of
memory (killed by their nanny) and out of disk (ENOSPC in their tasks).
"""
import os
import signal
import sys

import numpy as np
import pytest
import tifffile

from conftest import (assert_one_line_error, geotiff_tags, run_command, write_pair,
                      write_random_checkpoint)
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


def _write_scratch_to_a_full_disk(*args, **kwargs):
    """Stands in for ``sharpen_tile`` on a worker: writes its scratch to ``/dev/full``, where
    the kernel answers every write with ENOSPC, as a full scratch or spill disk does."""
    with open("/dev/full", "wb", buffering=0) as scratch:
        scratch.write(b"\0" * 4096)


def _patch_workers(replacement):
    """Sets ``cluster.sharpen_tile`` to ``replacement`` in this process (run on each worker)."""
    from sipsa_tf.scene import cluster as worker_cluster
    worker_cluster.sharpen_tile = replacement


def test_a_worker_out_of_disk_ends_with_one_line_and_leaves_nothing(case, client, tmp_path):
    """The workers' tile tasks hit a real ENOSPC (a patched task writing to /dev/full): the job
    fails with one sentence naming the scene, the tile and the disk error; no file is left."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system (the test's source of a real ENOSPC)")
    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    _, checkpoint, scenes = case
    pan_path, ms_path, _ = scenes[0]
    out = str(tmp_path / "out.tif")
    client.run(_patch_workers, _write_scratch_to_a_full_disk)
    try:
        with pytest.raises(scene.SceneError) as raised:
            cluster.pansharpen_on_cluster(client, checkpoint, [(pan_path, ms_path, out)],
                                          scene.SceneOptions(**OPTIONS))
    finally:
        client.run(_patch_workers, cluster.sharpen_tile)  # the real one back on every worker
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(out + ": tile ") and " of 9 failed on a worker: " in message
    assert message.endswith(": No space left on device; no output is left for the scenes not "
                            "complete")
    assert os.listdir(tmp_path) == []


def test_a_worker_out_of_memory_ends_the_command_with_one_line(case, tmp_path):
    """The command line with two local workers whose memory limit is below what TensorFlow
    needs (Dask's terminate threshold at 1% of the limit, allowed-failures 0): each worker's
    nanny kills it while it builds its model; one ``error:`` line, exit 1, no file left."""
    _, checkpoint, scenes = case
    pan_path, ms_path, _ = scenes[0]
    out = tmp_path / "out.tif"
    result = run_command(
        [sys.executable, "-m", "sipsa_tf.pansharpen", "--pan=%s" % pan_path,
         "--ms=%s" % ms_path, "--out=%s" % out, "--checkpoint=%s" % checkpoint,
         "--bands=3,1,4", "--tile=%d" % TILE, "--workers=2", "--progress=off"],
        env={"DASK_DISTRIBUTED__WORKER__MEMORY__TERMINATE": "0.01",
             "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})
    assert "memory budget" in result.stderr  # Dask's own warning: the nanny's restart did it
    line = assert_one_line_error(result, str(out), "was lost", "out of memory")
    assert line.startswith("error: %s: tile " % out)
    assert os.listdir(tmp_path) == []
