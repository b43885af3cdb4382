"""The papers' networks (and a trained ImageNet stand-in), their data sets, training and the model cache.

* :mod:`.zoo`: trained MNIST / Fashion-MNIST models by name, trained once and cached;
* :mod:`.mnist_models`, :mod:`.sixt_models`: the architectures (Adebayo et al. 2018; Sixt et al. 2020);
* :mod:`.datasets`, :mod:`.training`: offline data through tfds and the training profiles;
* :mod:`.efficientnet_lite` (weights read by :mod:`.torch_state`): EfficientNet-Lite0 with its
  published ImageNet weights, the ImageNet figures' offline stand-in for Inception v3;
* :mod:`.imagenet_eval`, :mod:`.inception_eval`: ``tf-sanity imagenet-eval`` / ``inception-eval``.

Submodules are imported on use; this package imports nothing heavy.
"""
