"""Where a fresh ``sipsa-pansharpen`` run's time goes (SIPSA-Net, Lee, Seo, Kim, CVPR 2021).

    .venv/bin/python benchmarks/startup.py [--size 1024] [--precision float32] [--rounds 1]

Writes a uint16 GeoTIFF pair of ``--size``^2 PAN pixels, then runs the command line
(``sipsa_tf.pansharpen``'s ``main``, the bundled checkpoint) in a fresh process that records
when each stage ends: the interpreter and the command line's own imports, TensorFlow's import,
the input checks, the graph build, the session and restore, every call into the network (the
MS-resolution part per window and the PAN-resolution tail per piece, with their shapes: the
first call with a shape pays graph optimisation and oneDNN primitives, XLA compiles the FAM on a
later one), reading and writing. The child then ends as the console script does
(``sipsa_tf.cli.common.finish``: no interpreter teardown), or with ``--slow_exit`` through the
interpreter's teardown as it used to. The parent prints the stages and the process's wall time.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scene_speed import _write_pair  # noqa: E402  (the same GeoTIFF pairs)
from sipsa_tf.constants import BUNDLED_CHECKPOINT  # noqa: E402  (no TensorFlow import)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(args):
    """Runs the command line with timing wrappers; prints the stages as JSON on the last line."""
    t_start = float(os.environ["STARTUP_T0"])
    stages = [("interpreter and the script's imports (numpy)", time.time())]
    import sipsa_tf.pansharpen as cli  # absl, the flags; no TensorFlow
    stages.append(("command line imports (no TensorFlow)", time.time()))
    import tensorflow  # noqa: F401
    stages.append(("import tensorflow", time.time()))
    from sipsa_tf import session as sessions
    from sipsa_tf.scene import run, tile_model

    calls = []

    def wrap(owner, name, label, shape_of=None):
        original = getattr(owner, name)

        def timed(*a, **k):
            begin = time.time()
            try:
                return original(*a, **k)
            finally:
                end = time.time()
                calls.append((label, shape_of(a) if shape_of else "", begin, end))
        setattr(owner, name, timed)

    wrap(run, "check_inputs", "input checks (headers, bit depth scan)")
    wrap(sessions, "open_session", "session + restore")
    wrap(tile_model.TileModel, "__init__", "graph build + session + restore (TileModel)")
    wrap(tile_model.TileModel, "features", "network, MS-resolution part",
         lambda a: "x".join(str(v) for v in a[1].shape[:2]))
    wrap(tile_model.TileModel, "tail", "network, PAN-resolution tail",
         lambda a: "%dx%d" % tuple(a[2][2:]))
    wrap(run.Raster, "read", "read window")
    wrap(run.geotiff.TiffSink, "put", "encode + queue tile")
    wrap(run.geotiff.TiffSink, "finish", "finish writing (wait for the writer)")
    wrap(run.geotiff.TiffSink, "commit", "rename into place")
    argv = ["sipsa-pansharpen", "--checkpoint=" + args.checkpoint, "--pan=" + args.pan,
            "--ms=" + args.ms, "--out=" + args.out, "--progress=off",
            "--precision=" + args.precision]
    try:
        cli.app.run(cli.main, argv=argv)
    except SystemExit as done:
        if done.code:
            raise
    stages.append(("end of the command", time.time()))
    print(json.dumps({"t0": t_start, "stages": stages, "calls": calls}))
    if args.fast_exit:  # as the console script ends (sipsa_tf.cli.common.exiting_now)
        from sipsa_tf.cli import common
        common.finish(0)


def _report(result, wall):
    t0 = result["t0"]
    print("  %-52s %8s %8s" % ("stage (fresh process)", "ends at", "seconds"))
    previous = t0
    for label, at in result["stages"][:3]:
        print("  %-52s %8.2f %8.2f" % (label, at - t0, at - previous))
        previous = at
    totals = {}
    for label, shape, begin, end in result["calls"]:
        key = label + (" " + shape if shape else "")
        count, seconds, first = totals.get(key, (0, 0.0, end - begin))
        totals[key] = (count + 1, seconds + end - begin, first)
    for key, (count, seconds, first) in totals.items():
        print("  %-52s %8s %8.2f  (%d call%s, first %.2f s)" % (
            key, "", seconds, count, "s" if count > 1 else "", first))
    end = result["stages"][-1][1]
    print("  %-52s %8.2f" % ("end of the command", end - t0))
    print("  %-52s %8.2f  (interpreter exit included)" % ("process wall time", wall))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--checkpoint", default=os.path.join(REPO, BUNDLED_CHECKPOINT))
    parser.add_argument("--slow_exit", action="store_true", help="let the child exit as the "
                        "command line used to, through the interpreter's teardown")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fast_exit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pan", help=argparse.SUPPRESS)
    parser.add_argument("--ms", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        pan_path, ms_path = _write_pair(tmp, args.size)
        for round_ in range(args.rounds):
            out = os.path.join(tmp, "out.tif")
            cmd = [sys.executable, os.path.abspath(__file__), "--child", "--pan", pan_path,
                   "--ms", ms_path, "--out", out, "--checkpoint", args.checkpoint,
                   "--precision", args.precision] + ([] if args.slow_exit else ["--fast_exit"])
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", STARTUP_T0=repr(time.time()))
            start = time.time()
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
            wall = time.time() - start
            if res.returncode != 0:
                raise SystemExit("error: the run failed: %s" % res.stderr.strip()[-500:])
            print("sipsa-pansharpen %d^2 PAN, --precision=%s, round %d:" % (
                args.size, args.precision, round_ + 1))
            _report(json.loads(res.stdout.strip().splitlines()[-1]), wall)
            os.remove(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
