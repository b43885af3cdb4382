"""The papers' networks, their data sets, training and the model cache.

* :mod:`.zoo`: trained MNIST / Fashion-MNIST models by name, trained once and cached;
* :mod:`.mnist_models`, :mod:`.sixt_models`: the architectures (Adebayo et al. 2018; Sixt et al. 2020);
* :mod:`.datasets`, :mod:`.training`: offline data through tfds and the training profiles.

Submodules are imported on use; this package imports nothing heavy.
"""
