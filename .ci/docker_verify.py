"""Host-side checks after .ci/docker's runs of the CPU image; writes logs/ci-docker/result.json.

Run with the host's .venv (not the image's): the checkpoint written through the mount must restore
outside Docker. Each failed check prints one line and exits with status 1.
"""
import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np


def fail(message):
    print("docker_verify: FAILED, %s" % message, file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def owners(root, uid, gid):
    """Number of paths under root; fails on any not owned by uid:gid."""
    n = 0
    for folder, dirs, files in os.walk(root):
        for name in [""] + dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            check((st.st_uid, st.st_gid) == (uid, gid),
                  "%s is owned by %d:%d, not by the caller %d:%d" % (path, st.st_uid, st.st_gid, uid, gid))
            n += 1
    return n


def main():
    parser = argparse.ArgumentParser()
    for name in ("work", "shell_output", "image", "seconds", "result"):
        parser.add_argument("--" + name, required=True)
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--gid", type=int, required=True)
    args = parser.parse_args()
    logs = os.path.join(args.work, "logs")
    ckpt_dir = os.path.join(args.work, "checkpoints", "cpu_small")

    # Everything the containers wrote is on the host and belongs to the caller.
    n_paths = owners(args.work, args.uid, args.gid)

    # Two training runs: the second resumed from the first's step-10 checkpoint, through the mount.
    train_log = os.path.join(logs, "cpu_small", "train_log.txt")
    check(os.path.isfile(train_log), "no %s" % train_log)
    text = open(train_log, encoding="utf-8").read()
    resumed = re.findall(r"resumed from (\S+) \(global step (\d+)\)", text)
    check(resumed == [("/checkpoints/cpu_small/model.ckpt-10", "10")],
          "%s: expected one resume from /checkpoints/cpu_small/model.ckpt-10, found %s" % (train_log, resumed))

    import tensorflow as tf
    import sipsa_tf

    latest = tf.train.latest_checkpoint(ckpt_dir)
    check(latest == os.path.join(ckpt_dir, "model.ckpt-20"), "latest checkpoint in %s is %s" % (ckpt_dir, latest))
    reader = tf.train.load_checkpoint(latest)
    check(int(reader.get_tensor("global_step")) == 20, "%s: global_step %s" % (latest, reader.get_tensor("global_step")))

    # The checkpoint restores outside Docker, with the values stored in it (read independently).
    rng = np.random.RandomState(0)
    ms = rng.uniform(0.1, 0.6, (16, 16, 3)).astype(np.float32)
    pan = rng.uniform(0.1, 0.6, (64, 64)).astype(np.float32)
    with sipsa_tf.Pansharpener(ckpt_dir) as p20:
        check(p20.checkpoint == latest, "Pansharpener restored %s, not %s" % (p20.checkpoint, latest))
        values = p20.session.run(p20.variables)
        for var, value in zip(p20.variables, values):
            stored = reader.get_tensor(var.op.name)
            check(np.array_equal(value, stored), "%s differs from the checkpoint's value" % var.op.name)
        out20 = p20(ms, pan)["output"]
    check(out20.shape == (64, 64, 3) and np.isfinite(out20).all(), "output %s" % (out20.shape,))
    with sipsa_tf.Pansharpener(os.path.join(ckpt_dir, "model.ckpt-10")) as p10:
        out10 = p10(ms, pan)["output"]
    check(not np.array_equal(out10, out20), "steps 11-20 of the resumed run changed nothing")

    # make docker-test-images wrote its PNGs and tables into the mounted output folder.
    out_dir = os.path.join(logs, "test_images")
    pngs = sorted(f for f in os.listdir(out_dir) if f.endswith(".png"))
    check(pngs, "no PNG in %s" % out_dir)
    for table in ("metrics.csv", "metrics.md"):
        path = os.path.join(out_dir, table)
        check(os.path.isfile(path) and os.path.getsize(path) > 0, "no %s" % path)
    from PIL import Image
    for name in pngs:
        with Image.open(os.path.join(out_dir, name)) as im:
            im.verify()

    # make docker-shell ran as the caller.
    shell = open(args.shell_output, encoding="utf-8", errors="replace").read()
    shell = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shell)  # the terminal's control sequences
    check(re.search(r"^%d$" % args.uid, shell, re.M), "docker-shell did not print uid %d: %r" % (args.uid, shell[-300:]))

    size = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", args.image],
                          capture_output=True, text=True, check=True).stdout.strip()
    result = {"status": "passed", "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                                           text=True).stdout.strip() or "unknown",
              "image": args.image, "image_bytes": int(size), "caller_uid": args.uid, "caller_gid": args.gid,
              "paths_owned_by_caller": n_paths, "checkpoint": os.path.basename(latest),
              "resumed_from": resumed[0][0], "test_pngs": len(pngs), "seconds": json.loads(args.seconds)}
    with open(args.result, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print("docker_verify: passed: %d paths owned by %d:%d, resumed at step 10, %s restores with "
          "Pansharpener, %d PNGs" % (n_paths, args.uid, args.gid, result["checkpoint"], len(pngs)))


if __name__ == "__main__":
    main()
