"""tf_sanity: sanity checks for saliency maps (Adebayo et al. 2018) for any Keras 3 model.

    import tf_sanity
    masks = tf_sanity.explain(model, images, "integrated_gradients", targets, steps=50)
    for stage, randomized in tf_sanity.randomization.cascading(model):
        rho = tf_sanity.metrics.spearman(masks, tf_sanity.explain(randomized, images, "gradient", targets))
"""

from tf_sanity import metrics, postprocess, randomization, rules, visualize, zoo
from tf_sanity.errors import SanityError
from tf_sanity.methods import LABELS, METHODS, Method, explain, smoothgrad, vargrad
from tf_sanity import csc, deeplift, lrp, modified_bp, patterns  # registers Sixt et al. (2020)'s methods

__all__ = ["explain", "METHODS", "LABELS", "Method", "smoothgrad", "vargrad", "metrics",
           "postprocess", "randomization", "rules", "visualize", "zoo", "SanityError"]
