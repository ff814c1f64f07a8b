"""Byte-identity of the toolbox's outputs across two versions of the code (a refactoring must not change a pixel).

  # once: the fixed inputs (a short reference run, a 1-epoch VGG example model, a folder of image files)
  python scripts/identity_check.py inputs --data_dir ../shared/cifar10 --work /tmp/identity
  # for each version of the tree (a git worktree of the old commit, then this checkout)
  python scripts/identity_check.py outputs --tree /tmp/old_tree --work /tmp/identity --name before
  python scripts/identity_check.py outputs --tree . --work /tmp/identity --name after
  python scripts/identity_check.py compare --work /tmp/identity before after

`outputs` runs the explorer (with --compare, --sanity, --optimize) and every analysis on the reference run,
the explorer and two analyses on the VGG example, and the explorer and attribution on an
`applications:MobileNetV2` model (a weights file of a seeded random initialization, a folder of PNG files),
with the code of `--tree`, and writes a sha256 manifest of every .png and index.json it produced (index.json
less its output folder and timings). `compare` lists any file that differs or
is missing on either side.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys


def run(tree: str, args: list[str], log) -> None:
    """Runs `python args...` in `tree` with that tree's package first on the path; fails loudly."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), TF_CPP_MIN_LOG_LEVEL="3")
    print("$", " ".join(args), flush=True)
    done = subprocess.run([sys.executable, *args], cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(args)}")


def make_inputs(data_dir: str, work: str) -> None:
    inputs = os.path.join(work, "inputs")
    os.makedirs(inputs, exist_ok=True)
    tree = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data_dir = os.path.abspath(data_dir)
    with open(os.path.join(work, "inputs.log"), "w") as log:
        run(tree, ["train.py", "--steps", "300", "--data_dir", data_dir, "--run", os.path.join(inputs, "ref"),
                   "--config.keep_steps=100,200,300"], log)  # fmt: skip
        run(tree, ["examples/keras_cifar10.py", "--data_dir", data_dir, "--epochs", "1", "--limit", "2000",
                   "--out", os.path.join(inputs, "vgg")], log)  # fmt: skip
    # image files for the applications model, written from the CIFAR-10 test split
    sys.path.insert(0, tree)
    from vizdeconv.data import sources

    images, labels = sources.load_images(data_dir, "test", (32, 32, 3), limit=24)
    import keras

    # weights=None initializes at random in each process: a fixed weights file makes the model the same
    keras.utils.set_random_seed(0)
    keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3)).save_weights(
        os.path.join(inputs, "mobilenetv2_64.weights.h5")
    )
    folder = os.path.join(inputs, "folder")
    for index, (image, label) in enumerate(zip(images, labels)):
        os.makedirs(os.path.join(folder, str(int(label))), exist_ok=True)
        keras.utils.save_img(os.path.join(folder, str(int(label)), f"{index:03d}.png"), image)


def commands(work: str, out: str) -> list[list[str]]:
    inputs = os.path.join(work, "inputs")
    app = ["--model", "applications:MobileNetV2:64", "--weights", os.path.join(inputs, "mobilenetv2_64.weights.h5")]
    ref, vgg, folder = (
        os.path.join(out, "ref"),
        os.path.join(inputs, "vgg", "model.keras"),
        os.path.join(inputs, "folder"),
    )
    cifar = os.path.join(inputs, "cifar")
    vd = ["-m", "vizdeconv"]
    return [
        [*vd, "explore", "--run", ref, "--limit", "300", "--layer", "conv1", "--layer", "conv3", "--compare",
         "--sanity", "--optimize", "--steps", "16", "--out", os.path.join(out, "ref_explore")],
        [*vd, "analyze", "occlusion", "--run", ref, "--images", "0,5", "--patch", "6", "--stride", "3"],
        [*vd, "analyze", "evolution", "--run", ref, "--layer", "conv1", "--limit", "200"],
        [*vd, "analyze", "invariance", "--run", ref, "--images", "first:2"],
        [*vd, "analyze", "sanity", "--run", ref, "--layer", "conv3", "--images", "first:2"],
        [*vd, "analyze", "optimize", "--run", ref, "--layer", "conv2", "--channels", "0,5", "--steps", "16"],
        [*vd, "analyze", "attribute", "--run", ref, "--limit", "3"],
        [*vd, "explore", "--model", vgg, "--data_dir", cifar, "--limit", "300", "--layer", "relu3_2",
         "--out", os.path.join(out, "vgg_explore")],
        [*vd, "analyze", "occlusion", "--model", vgg, "--data_dir", cifar, "--images", "0", "--patch", "8",
         "--stride", "4", "--out", os.path.join(out, "vgg_occlusion")],
        [*vd, "analyze", "attribute", "--model", vgg, "--data_dir", cifar, "--images", "0,5",
         "--method", "gradcam", "--method", "scorecam", "--out", os.path.join(out, "vgg_attribute")],
        [*vd, "explore", *app, "--data_dir", folder, "--layer", "block_2_add",
         "--out", os.path.join(out, "app_explore")],
        [*vd, "analyze", "attribute", *app, "--data_dir", folder, "--images", "first:2", "--method", "gradcam",
         "--out", os.path.join(out, "app_attribute")],
    ]  # fmt: skip


def make_outputs(tree: str, work: str, name: str, data_dir: str) -> None:
    out = os.path.join(work, name)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(os.path.join(work, "inputs", "ref"), os.path.join(out, "ref"))
    cifar = os.path.join(work, "inputs", "cifar")
    if not os.path.exists(cifar):
        os.symlink(os.path.abspath(data_dir), cifar)
    with open(os.path.join(work, f"{name}.log"), "w") as log:
        for args in commands(work, out):
            run(tree, args, log)
    manifest = {}
    for folder, _, files in os.walk(out):
        for file in files:
            if file.endswith(".png") or file == "index.json":
                path = os.path.join(folder, file)
                content = open(path, "rb").read()
                if file == "index.json":  # the output folder and the timings differ from run to run
                    content = json.dumps(without_timings(json.loads(content)), sort_keys=True).encode()
                manifest[os.path.relpath(path, out)] = hashlib.sha256(content).hexdigest()
    with open(os.path.join(work, f"{name}.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    print(f"{len(manifest)} files hashed into {os.path.join(work, name + '.json')}")


def without_timings(value):
    """index.json less what differs between two runs of the same code: `out` and every `*seconds` field."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k != "out" and not k.endswith("seconds")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def compare(work: str, first: str, second: str) -> int:
    a, b = (json.load(open(os.path.join(work, f"{name}.json"))) for name in (first, second))
    differ = sorted(path for path in a.keys() & b.keys() if a[path] != b[path])
    only = sorted(a.keys() ^ b.keys())
    pngs = sum(path.endswith(".png") for path in a)
    print(f"{len(a)} files ({pngs} PNG, {len(a) - pngs} index.json) in {first}, {len(b)} in {second}; "
          f"{len(differ)} differ, {len(only)} on one side only")  # fmt: skip
    for path in differ + only:
        print("  ", path)
    return 1 if differ or only else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["inputs", "outputs", "compare"])
    parser.add_argument("names", nargs="*", help="compare: the two manifests' names")
    parser.add_argument("--work", default="/tmp/identity")
    parser.add_argument("--data_dir", default="../shared/cifar10")
    parser.add_argument("--tree", default=".")
    parser.add_argument("--name", default="after")
    args = parser.parse_intermixed_args()
    if args.what == "inputs":
        make_inputs(args.data_dir, args.work)
    elif args.what == "outputs":
        make_outputs(args.tree, args.work, args.name, args.data_dir)
    else:
        sys.exit(compare(args.work, *args.names))


if __name__ == "__main__":
    main()
