"""Wall time of the MNIST CNN cascading experiment at the ``paper`` preset on this machine.

Runs ``sc_cascading_mnist`` with the paper preset's settings (all methods with SmoothGrad / VarGrad,
IG 50 steps, 50 samples) for the MNIST CNN, cascading mode, on `--images` test images (default: all
200 of the preset), into a temporary folder, and prints the wall time; with fewer images it also
prints the projection to 200 (the work is linear in the number of images). The trained model is
used when cached; otherwise an untrained CNN of the same architecture stands in (timing does not
depend on the weights) and the output says so.

    python benchmarks/bench_paper_preset.py [--images 200]
"""

import argparse
import dataclasses
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # experiments/ beside this checkout's tf_sanity

from experiments import common, sc_cascading_mnist as exp  # noqa: E402
from tf_sanity.models import mnist_models, zoo  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=exp.PRESETS["paper"].images)
    parser.add_argument("--data-dir", default=os.environ.get("TF_SANITY_DATA_DIR", ""))
    args = parser.parse_args()
    paper = exp.PRESETS["paper"]
    config = dataclasses.replace(paper, models=("mnist-cnn",), modes=("cascading",), images=args.images,
                                 data_dir=args.data_dir)
    cached = zoo.model_dir("mnist-cnn").joinpath(zoo.WEIGHTS_FILE).exists()
    if not cached:
        zoo.trained_model = lambda name, **kw: mnist_models.build("cnn")
    with tempfile.TemporaryDirectory() as out:
        start, cpu_start = time.perf_counter(), time.process_time()
        rows, _ = common.run(exp, "paper", out, config=config)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"model: {'trained (cache)' if cached else 'untrained stand-in (no cached model)'}; "
          f"{len(config.methods)} methods, IG steps {config.ig_steps}, samples {config.samples}, 4 stages + original")
    print(f"paper preset, MNIST CNN cascading, {args.images} images: {elapsed:.0f} s wall, {cpu:.0f} s process CPU "
          f"time on {os.cpu_count()} cores ({len(rows)} rows)")
    if args.images != paper.images:
        scale = paper.images / args.images / 3600
        print(f"projected to {paper.images} images: {elapsed * scale:.2f} h wall, {cpu * scale:.2f} CPU-hours "
              "(on a busy machine the CPU time is the steadier figure)")


if __name__ == "__main__":
    main()
