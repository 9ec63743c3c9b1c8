"""Scenes pan-sharpened on a Dask cluster (``dask.distributed``): tiles on workers, files here.

Part of the scene tool, :mod:`sipsa_tf.scene` (docs/design.md, "Scenes on a cluster"); SIPSA-Net
is Lee, Seo, Kim, CVPR 2021. The driver (this process) checks every scene, plans its tiles
(:func:`~sipsa_tf.scene.plan.plan_tiles`) and submits one task per tile. A task reads its
window from the input files (every worker must see the same paths), runs SIPSA-Net on it and
returns the encoded core (:func:`~sipsa_tf.scene.run.sharpen_tile`, the same code as one
process). Each worker process keeps one :class:`~sipsa_tf.scene.tile_model.TileModel` per
checkpoint (one graph serves every window shape), built by its first task.

Results arrive in any order; the driver writes them into each scene's output
(:class:`~sipsa_tf.scene.run.SceneWriter`, temporary files renamed at the end) in row-major
order. At most ``in_flight`` tiles are submitted and not yet written, so the driver holds at
most that many finished tiles whatever the scene size. Dask reruns the tasks of a worker that
dies (killed, or by its nanny for using more than its memory limit); when a task has killed too
many workers (Dask's ``distributed.scheduler.allowed-failures``), a worker's task fails with an
``OSError`` (its disk full, say) or anything else fails, every scene not yet complete is removed;
the first two give a one-line error naming the scene and the tile. Scenes finished before the
failure stay (each is complete).

``dask[distributed]`` is an optional dependency (``pip install sipsa-tf[dask]``); this module
imports it when called.
"""
import collections
import os
import threading
import time

from sipsa_tf.constants import SCALE
from sipsa_tf.io.raster import Raster
from sipsa_tf.scene import grid as grids
from sipsa_tf.scene.options import SceneError, SceneOptions, _check_outputs, check_inputs
from sipsa_tf.scene.plan import plan_tiles, window_note
from sipsa_tf.scene.run import SceneWriter, sharpen_tile
from sipsa_tf.utils.progress import Progress

# tiles submitted and not yet written, per worker thread of the cluster
IN_FLIGHT_PER_WORKER = 2

_MODELS = {}  # per worker process: (checkpoint, threads, precision) -> TileModel
_MODELS_LOCK = threading.Lock()


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise SceneError("--scheduler and --workers need Dask: pip install 'sipsa-tf[dask]'")
    return distributed


def _worker_model(checkpoint, options):
    """This worker process's TileModel for ``checkpoint`` and ``options`` (built by the first
    task)."""
    from sipsa_tf.scene.tile_model import TileModel
    key = (checkpoint, options.threads, options.precision)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = TileModel.for_options(checkpoint, options)
        return _MODELS[key]


def _tile_task(checkpoint, job, core, window):
    """One tile on a worker: (encoded tiles, preview part); ``job`` = (inputs, options,
    encoder, preview step); the inputs' grid names the files and how they are read."""
    inputs, options, encode, preview_step = job
    model = _worker_model(checkpoint, options)
    with grids.open_sources(inputs.grid, inputs.nodata) as sources:
        return sharpen_tile(model, sources, core, window, inputs, options, encode,
                            preview_step)


def read_pairs(path):
    """A pairs file: one ``pan,ms,out`` per line (blank lines and ``#`` comments skipped);
    relative paths are relative to the file's folder.

    Raises:
        SceneError: naming the file and line.
    """
    jobs = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise SceneError("%s: cannot read the pairs file (%s)" % (path, err.strerror))
    base = os.path.dirname(os.path.abspath(path))
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 3 or not all(fields):
            raise SceneError("%s: line %d must be pan,ms,out (three paths), got %r"
                             % (path, number, line))
        jobs.append(tuple(os.path.join(base, f) for f in fields))
    if not jobs:
        raise SceneError("%s: no pan,ms,out line" % path)
    outs = [os.path.abspath(j[2]) for j in jobs]
    if len(set(outs)) != len(outs):
        raise SceneError("%s: two lines write the same output" % path)
    return jobs


def _release_models():
    """Closes this worker process's tile models (run on every worker at the end of a job)."""
    with _MODELS_LOCK:
        while _MODELS:
            _MODELS.popitem()[1].close()


def start_client(scheduler=None, workers=0):
    """A Dask client on ``scheduler`` (an address), or on a new LocalCluster of ``workers``
    processes of one thread each. The caller closes it (and its cluster, ``client.cluster``).
    Dask's INFO lines (scheduler and worker start, connections) are held back; its warnings
    (a worker restarted, ...) stay."""
    import logging
    distributed = _import_distributed()
    logging.getLogger("distributed").setLevel(logging.WARNING)  # set to INFO by its import
    if scheduler:
        try:
            return distributed.Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as err:
            raise SceneError("--scheduler %s: cannot connect (%s)" % (scheduler, err))
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=True, dashboard_address=None)
    return distributed.Client(cluster)


def local_threads(workers, threads):
    """TensorFlow threads per local worker: ``threads``, or the cores shared out."""
    return threads or max(1, (os.cpu_count() or 1) // max(workers, 1))


def pansharpen_on_cluster(client, checkpoint, jobs, options=None, in_flight=None, on_tile=None,
                          stream=None, say=None):
    """Pan-sharpens scenes as one job on a Dask cluster.

    Args:
        client: a ``distributed.Client``.
        checkpoint: checkpoint prefix or directory (the workers must see it).
        jobs: list of (pan path, ms path, out path); ``options.aligned_out`` and
            ``options.preview`` are allowed with one scene only.
        options: :class:`SceneOptions` shared by the scenes (bits and nodata are found per
            scene when not given); ``options.threads`` are each worker's TensorFlow threads.
        in_flight: most tiles submitted and not yet written (default: 2 per worker thread).
        on_tile: optional callback ``on_tile(done, total)`` after each tile written.
        stream: where the progress bar goes (default stderr).
        say: optional callback given each scene's grid note and
            :func:`~sipsa_tf.scene.plan.window_note` (``out: note``), if any.

    Returns:
        dict: scenes, tiles, seconds, megapixels (PAN), outputs (paths written).

    Raises:
        SceneError (with the scene's name when a tile fails or its workers died),
        raster.RasterError, checkpoints.CheckpointError, OSError. The outputs of every scene
        not complete are removed.
    """
    from sipsa_tf import checkpoints
    distributed = _import_distributed()
    options = options or SceneOptions()
    options.validate()
    if len(jobs) > 1 and (options.aligned_out or options.preview):
        raise SceneError("--aligned_out and --preview need a single scene, not --pairs")
    for pan_path, ms_path, out_path in jobs:
        _check_outputs(options.outputs(out_path), (pan_path, ms_path))
    checkpoint = checkpoints.resolve(checkpoint)
    forward_options = checkpoints.forward_options(checkpoint)
    scenes = []
    for pan_path, ms_path, out_path in jobs:  # every scene checked before anything runs
        with Raster(pan_path) as pan, Raster(ms_path) as ms:
            inputs = check_inputs(pan, ms, options)
        tiles = plan_tiles(inputs.grid.height, inputs.grid.width, options.tile // SCALE,
                           options.halo)
        for note in (inputs.grid.note, window_note(forward_options, tiles)):
            if say is not None and note:
                say("%s: %s" % (out_path, note))
        height, width = inputs.grid.pan_size
        scenes.append((pan_path, ms_path, out_path, inputs, tiles, height * width))
    if in_flight is None:
        in_flight = IN_FLIGHT_PER_WORKER * max(1, sum(client.nthreads().values()))
    start = time.time()
    total = sum(len(s[4]) for s in scenes)
    progress = Progress(total, desc="pansharpen", stream=stream, mode=options.progress)
    writers, written = {}, []
    try:
        _run(client, distributed, checkpoint, scenes, options, in_flight, writers, written,
             (progress, on_tile, total))
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    finally:
        progress.close()
    return {"scenes": len(scenes), "tiles": total, "seconds": time.time() - start,
            "megapixels": sum(s[5] for s in scenes) / 1e6, "outputs": written}


def _run(client, distributed, checkpoint, scenes, options, in_flight, writers, written,
         report):
    """Submits the tiles in order with at most ``in_flight`` outstanding and writes each
    scene's tiles in row-major order as they come; fills ``writers`` (open) and ``written``."""
    progress, on_tile, total = report
    order = [(s, t) for s, scene in enumerate(scenes) for t in range(len(scene[4]))]
    pending, done, jobs = {}, {}, {}  # future -> (scene, tile); (scene, tile) -> result
    next_submit, next_write, count = 0, collections.Counter(), 0
    try:
        while count < total:
            while next_submit < len(order) and len(pending) + len(done) < in_flight:
                s, t = order[next_submit]
                pan_path, ms_path, out_path, inputs, tiles, _ = scenes[s]
                if s not in writers:
                    writers[s] = SceneWriter(out_path, options, inputs)
                    jobs[s] = (inputs, options, writers[s].encode, writers[s].preview_step)
                future = client.submit(_tile_task, checkpoint, jobs[s], *tiles[t], pure=False)
                pending[future] = (s, t)
                next_submit += 1
            finished, _ = distributed.wait(list(pending), return_when="FIRST_COMPLETED")
            for future in finished:
                s, t = pending.pop(future)
                try:
                    done[(s, t)] = future.result()
                except distributed.KilledWorker:
                    raise SceneError(
                        "%s: tile %d of %d was lost: the workers running it died (out of "
                        "memory or killed; Dask's allowed-failures reached); no output is left "
                        "for the scenes not complete" % (scenes[s][2], t + 1, len(scenes[s][4])))
                except OSError as err:  # e.g. a worker's disk full (its scratch or spill space)
                    raise SceneError(
                        "%s: tile %d of %d failed on a worker: %s; no output is left for the "
                        "scenes not complete" % (scenes[s][2], t + 1, len(scenes[s][4]),
                                                 _os_error(err)))
                future.release()
                while (s, next_write[s]) in done:
                    writers[s].put(*done.pop((s, next_write[s])))
                    next_write[s] += 1
                    count += 1
                    progress.update(count)
                    if on_tile is not None:
                        on_tile(count, total)
                    if next_write[s] == len(scenes[s][4]):
                        writers.pop(s).commit()
                        written.append(scenes[s][2])
    finally:
        for future in pending:
            future.cancel()


def _os_error(err):
    """``strerror (file)`` of an OSError raised on a worker, on one line."""
    text = err.strerror or str(err)
    if err.filename:
        text += " (%s)" % err.filename
    return " ".join(text.split())


def pansharpen_job(checkpoint, jobs, options=None, scheduler=None, workers=0, stream=None,
                   say=None):
    """Pan-sharpens scenes: on a Dask cluster (``scheduler`` address, or a LocalCluster of
    ``workers`` processes), else one after another in this process with one tile model.

    Args:
        checkpoint: checkpoint prefix or directory.
        jobs: list of (pan path, ms path, out path).
        options: :class:`SceneOptions`; with ``workers`` and ``options.threads`` 0, each local
            worker gets the cores shared out (:func:`local_threads`).
        scheduler, workers: where the tiles run (see above).
        stream: where the progress bar goes.
        say: optional callback given each scene's notes (grid, tiling), if any.

    Returns:
        dict: scenes, tiles, seconds, megapixels, outputs.
    """
    import dataclasses
    options = options or SceneOptions()
    if not scheduler and not workers:
        from sipsa_tf.scene.run import pansharpen_scene
        from sipsa_tf.scene.tile_model import TileModel
        options.validate()
        summary = {"scenes": len(jobs), "tiles": 0, "seconds": 0.0, "megapixels": 0.0,
                   "outputs": []}
        model = TileModel.for_options(checkpoint, options)
        try:
            for pan_path, ms_path, out_path in jobs:
                one = pansharpen_scene(
                    None, pan_path, ms_path, out_path, options, model, stream=stream,
                    say=None if say is None else lambda note, o=out_path: say(
                        "%s: %s" % (o, note)))
                for key in ("tiles", "seconds", "megapixels", "outputs"):
                    summary[key] += one[key]
        finally:
            model.close()
        return summary
    if workers < 0:
        raise SceneError("--workers must be positive, got %d" % workers)
    if workers and not scheduler:
        options = dataclasses.replace(options, threads=local_threads(workers, options.threads))
    client = start_client(scheduler, workers)
    try:
        return pansharpen_on_cluster(client, checkpoint, jobs, options, stream=stream, say=say)
    finally:
        try:
            client.run(_release_models)  # the workers' sessions (and memory) go now
        except Exception:  # a worker already gone: nothing to release there
            pass
        client.close()
        if not scheduler:
            client.cluster.close()


def print_job_summary(summary, stream=None):
    """Prints what :func:`pansharpen_job` wrote."""
    import sys
    from sipsa_tf.scene.run import count_tiles
    (stream or sys.stdout).write(
        "wrote %s: %d scenes, %.2f PAN megapixels in %s, %.1f s (%.3f MPix/s)\n"
        % (", ".join(summary["outputs"]), summary["scenes"], summary["megapixels"],
           count_tiles(summary["tiles"]), summary["seconds"],
           summary["megapixels"] / max(summary["seconds"], 1e-9)))
