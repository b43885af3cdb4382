"""The committed demonstrations of ``tf-sanity check`` (issue 17, item 8), made as a user would make them: the
model saved as a ``.keras`` file and the inputs as files (in a temporary folder, not committed), then the command.

    python benchmarks/make_check_demo.py mnist          # -> figures/check/mnist-cnn
    python benchmarks/make_check_demo.py efficientnet   # -> figures/check/efficientnet-lite0 (a subset, below)
    python benchmarks/make_check_demo.py efficientnet --dry-run   # its cost estimate only

* ``mnist``: the cached paper-profile MNIST CNN (``tf_sanity.models.zoo.load_or_train("mnist-cnn")``) and the first
  16 MNIST test images in [0, 1] (what the model takes) with their labels, ``--preset quick``, every default method.
* ``efficientnet``: EfficientNet-Lite0 with its ImageNet weights (``tf_sanity.models.efficientnet_lite``; the Keras
  model does not hold its ``(x - 127) / 128`` preprocessing, so ``--preprocess
  tf_sanity.models.efficientnet_lite:preprocess`` gives it), the first 8 of ``$TF_SANITY_DATA_DIR/imagenet/
  samples_fullres`` (one image per class, resized to 224 x 224), targets predicted. A subset of the quick preset,
  chosen to fit about 15 min of a shared 2-core CPU (:data:`EFFICIENTNET_SUBSET`): 8 images, 4 methods, the orders
  top down and independent (the paper's Fig. 2 and 3), IG with 16 steps instead of 50, and sMPRT with N = 2
  instead of 10. The dry run of 4 methods over all three orders with IG's 50 steps and N = 2 printed 41,976 passes
  (35.7 min at 51 ms a pass on the loaded machine): model randomization 24,168 (19 block groups x 3 orders), sMPRT
  16,960 (N x 20 model states), IG 53 of every 80 passes per input.

The unit caches (``<out>/.units``) stay out of git (.gitignore); a rerun of an interrupted demo continues there.
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "figures" / "check"
MNIST_IMAGES = 16
EFFICIENTNET_SUBSET = ["--limit", "8", "--methods", "gradient,guided_backprop,integrated_gradients,gradcam",
                       "--orders", "top_down,independent", "--set", "integrated_gradients.steps=16", "--smprt-n", "2"]
EFFICIENTNET_NOTE = """# tf-sanity check on EfficientNet-Lite0: a subset of the quick preset

Made by `python benchmarks/make_check_demo.py efficientnet`, which runs

    python -m tf_sanity check efficientnet_lite0.keras --inputs $TF_SANITY_DATA_DIR/imagenet/samples_fullres \\
        --preprocess tf_sanity.models.efficientnet_lite:preprocess {subset} --out figures/check/efficientnet-lite0

This is **a subset** of `--preset quick`, chosen to fit about 15 minutes of a shared 2-core CPU: 8 ImageNet images
(not 16), 4 methods (Gradient, Guided Backprop, Integrated Gradients, GradCAM; not Gradient x Input, Guided GradCAM
and SmoothGrad), the orders top down and independent (the paper's Fig. 2 and 3; not bottom up), IG with 16 steps
(not 50), and sMPRT with N = 2 noisy copies (not 10). EfficientNet-Lite0 has 19 block groups, so each order has 19
stages and sMPRT explains 20 model states N times: the same 4 methods over all three orders with 50 IG steps and
N = 2 came to 41,976 passes in the dry run (model randomization 24,168, sMPRT 16,960; 35.7 min at 51 ms a pass on
the loaded machine). The cost estimate the command printed before the run:

    {estimate}

See [report.md](report.md) (or report.html) for the verdicts; the MNIST demo (../mnist-cnn) runs the whole quick
preset.

What it found. Under the paper's re-initialization (every variable of a group, BatchNorm statistics included, from
a truncated normal with std 0.01; Adebayo et al. 2018, Sec. 3) the signal vanishes on this network: with `block15`
randomized (top down from there on, or alone in the independent order) the head's ReLU6 units see a nearly
constant input and GradCAM's maps are all zero; the other methods' maps are all zero from `block3` on (Guided
Backprop) or `block1` on (Gradient, IG), top down. An all-zero map has no rank similarity, so the fully randomized
stage decides nothing and every verdict is "inconclusive" (the report's reason says the maps are constant). The
stages before it still read: top down, the gradient is never edge-like (median `spearman_abs` 0.55 after `fc`,
0.19 at `block2`), Guided Backprop stays as similar as the edge detector until `block6` (0.62 there) and IG until
`block12`, GradCAM while only `fc` is random; independently, no method is in one class for every block. eMPRT's
complexity "rise" of -1 is the same vanishing (zero maps have zero entropy). The `original_code` policy (each
layer's own initializer) would keep a signal; the command does not offer it yet. IG's 16 steps are too few here:
its completeness error is 46 % (the report's completeness test fails it; the MNIST demo's 50 steps give 1.1 %).
"""


def _command(model, inputs, out, extra, dry_run):
    argv = [sys.executable, "-m", "tf_sanity", "check", str(model), "--inputs", str(inputs), *extra, "--preset",
            "quick", "--out", str(out)]
    if dry_run:
        argv.append("--dry-run")
    print("$", " ".join(argv[1:]), flush=True)
    done = subprocess.run(argv, cwd=ROOT, text=True, stdout=subprocess.PIPE)
    print(done.stdout, end="", flush=True)
    if done.returncode not in (0, 1):
        sys.exit(done.returncode)
    return done.stdout


def mnist(folder, dry_run):
    from tf_sanity.models import datasets, zoo

    model, metadata = zoo.load_or_train("mnist-cnn")
    print(f"mnist-cnn: test accuracy {metadata.get('test_accuracy')}", flush=True)
    model.save(folder / "mnist_cnn.keras")
    data = datasets.load("mnist")
    np.save(folder / "x.npy", data.x_test[:MNIST_IMAGES])
    np.save(folder / "labels.npy", data.y_test[:MNIST_IMAGES])
    _command(folder / "mnist_cnn.keras", folder / "x.npy", OUT / "mnist-cnn",
             ["--targets", str(folder / "labels.npy")], dry_run)


def efficientnet(folder, dry_run):
    from tf_sanity.models import datasets, efficientnet_lite

    efficientnet_lite.efficientnet_lite0("imagenet").save(folder / "efficientnet_lite0.keras")
    images = datasets.resolve_data_dir() / "imagenet" / "samples_fullres"
    out = OUT / "efficientnet-lite0"
    extra = ["--preprocess", "tf_sanity.models.efficientnet_lite:preprocess", *EFFICIENTNET_SUBSET]
    printed = _command(folder / "efficientnet_lite0.keras", images, out, extra, dry_run)
    if not dry_run:
        estimate = next((line for line in printed.splitlines() if line.startswith("estimate:")), "")
        (out / "README.md").write_text(EFFICIENTNET_NOTE.format(subset=" ".join(EFFICIENTNET_SUBSET),
                                                                estimate=estimate))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", choices=("mnist", "efficientnet"))
    parser.add_argument("--dry-run", action="store_true", help="print the command's cost estimate and stop")
    args = parser.parse_args()
    os.environ.setdefault("TF_SANITY_DATA_DIR", "/work/shared/data")
    with tempfile.TemporaryDirectory() as folder:
        {"mnist": mnist, "efficientnet": efficientnet}[args.demo](pathlib.Path(folder), args.dry_run)


if __name__ == "__main__":
    main()
