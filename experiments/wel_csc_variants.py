"""When Explanations Lie: which detail of the authors' CSC moves the small convnet's numbers (issue 19).

Median |cos| of CSC on one cached small convnet, for each method, under one change at a time from our
convention towards the authors' code (:data:`experiments.when_explanations_lie.CONVENTIONS`):

* ``tf_sanity``: relevance at fc6's input, fused ReLUs, alpha-beta with b+ / b-;
* ``x255``: the same with the images scaled to 0..255, as the authors' CIFAR-10 CSC fed uint8 test images to
  a network trained on [0, 1] (``load_images_cifar10`` has no ``/ 255``);
* ``authors_code``: relevance at the logits, read after each ReLU's rule, innvestigate 1.0.8's whole bias;
* ``authors_code x255``: both.

Run (the model must be cached, e.g. by ``reproduce when_explanations_lie --set sixt_profile=cpu``)::

    python -m experiments.wel_csc_variants mnist cpu [--methods deconvnet,lrp_alpha2beta1] [--images 4]
"""

import argparse

import numpy as np

from experiments import when_explanations_lie as wel

VARIANTS = (("tf_sanity", "tf_sanity", 1.0), ("x255", "tf_sanity", 255.0),
            ("authors_code", "authors_code", 1.0), ("authors_code x255", "authors_code", 255.0))
LAYERS = ("conv1", "conv2", "pool2", "conv4", "fc5")


def main(argv=None):
    import tf_sanity
    from tf_sanity.checks import csc
    from tf_sanity.models import datasets, sixt_models, training

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("profile")
    parser.add_argument("--methods", default="deconvnet,lrp_alpha2beta1,lrp_alpha5beta4,lrp_preset_b,lrp_z,deeplift")
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args(argv)
    training.configure_threads(2)
    model, meta = sixt_models.trained(args.dataset, args.profile)
    models = {False: model, True: sixt_models.authors_layout(model)}
    data = datasets.load(args.dataset)
    x = data.x_test[np.random.default_rng(0).choice(len(data.x_test), args.images, replace=False)]
    print(f"sixt-{args.dataset} ({args.profile}, test accuracy {meta['test_accuracy']:.4f}); median |cos| at "
          f"{', '.join(LAYERS)}")
    for method in args.methods.split(","):
        cells = []
        for name, convention, scale in VARIANTS:
            setting = wel.CONVENTIONS[convention]
            settings = {"bias": setting["bias"]} if "bias" in tf_sanity.METHODS[method].settings else {}
            if method == "deep_taylor_bounded":
                settings.update(low=0.0, high=scale)
            result = csc.cosine_similarity_convergence(models[setting["separate_relu"]], x * scale, method, "fc6",
                                                       layers=list(LAYERS), at=setting["at"], **settings)
            cells.append(f"{name}: " + " ".join(f"{v:.4f}" for v in result.median_abs_cos))
        print(f"{method}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
