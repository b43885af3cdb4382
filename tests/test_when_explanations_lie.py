"""The small convnet of Sixt et al. (appendix D) and the When-Explanations-Lie experiment's plumbing
(an untrained model injected into the run's context: no data or training needed)."""

import dataclasses

import keras
import numpy as np

from experiments import when_explanations_lie as wel
from tf_sanity.models import sixt_models


def test_convnet_structure():
    model = sixt_models.convnet()
    assert model.output_shape == (None, 10)
    assert [layer.name for layer in model.layers if layer.weights] == ["conv1", "conv2", "conv3", "conv4", "fc5", "fc6"]
    assert model.get_layer("pool4").output.shape[1:] == (7, 7, 128)
    assert model.count_params() == 6_674_058
    assert [g for g, _ in model.randomization_groups] == ["fc6", "fc5", "conv4", "conv3", "conv2", "conv1"]
    cifar = sixt_models.convnet(input_shape=sixt_models.INPUT_SHAPES["cifar10"])   # the paper's CIFAR-10 net
    assert cifar.get_layer("pool4").output.shape[1:] == (8, 8, 128)
    assert cifar.count_params() == 3 * 3 * 2 * 32 + 8 * 8 * 128 * 1024 - 7 * 7 * 128 * 1024 + 6_674_058


def test_experiment_units_rows_figures_and_claims():
    keras.utils.set_random_seed(0)
    model = sixt_models.convnet(widths=(4, 4, 6, 6, 16))
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    config = dataclasses.replace(wel.PRESETS["quick"], models=("sixt-mnist",), methods=("lrp_alpha1beta0", "deeplift"),
                                 images=3, csc_images=2, bootstrap=100)
    context = {"sixt-mnist": dict(model=model, meta={"test_accuracy": 0.1, "steps": 0}, x=x,
                                  targets=np.array([1, 2, 3]), index=np.arange(3),
                                  patterns=None, csc_model=model, csc_patterns=None)}
    rows = []
    for unit in wel.units(config):
        rows += wel.compute(config, unit, context)
    csc_rows = [r for r in rows if r["check"] == "csc"]
    assert {r["layer"] for r in csc_rows} == set(wel.CSC_LAYERS["sixt"])
    cascade = [r for r in rows if r["check"] == "cascading"]
    assert len(cascade) == 2 * 6 * 3  # methods x stages x images
    assert {r["check"] for r in rows} == {"model", "csc", "random_logit", "cascading"}
    figures = wel.plot(rows, config)
    assert set(figures) == {"csc", "random_logit", "cascading"}
    claims = wel.claims(rows, config)
    assert len(claims) == 4 and all(c.ours for c in claims)
    assert claims[0].claim.startswith("DeepLIFT") and "deeplift" in claims[0].ours
    assert "lrp_alpha1beta0" in claims[1].ours and "converging here:" in claims[2].ours


def test_imagenet_experiment_random_logit_and_cascading_rows_figures_and_claims():
    """wel_imagenet_csc's SSIM checks, on a small untrained convnet injected in place of EfficientNet-Lite0."""
    from experiments import wel_imagenet_csc
    keras.utils.set_random_seed(0)
    model = sixt_models.convnet(widths=(4, 4, 6, 6, 16))
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    targets = np.array([1, 2, 3])
    config = dataclasses.replace(wel_imagenet_csc.PRESETS["quick"], model="efficientnet_lite0", images=3,
                                 checks=("random_logit", "cascading"), methods=("lrp_alpha1beta0", "deeplift"),
                                 bootstrap=100)
    assert wel_imagenet_csc.units(config) == ["random_logit/lrp_alpha1beta0", "random_logit/deeplift",
                                              "cascading/lrp_alpha1beta0", "cascading/deeplift"]
    context = dict(model=model, x=x, targets=targets)
    rows = [r for unit in wel_imagenet_csc.units(config) for r in wel_imagenet_csc.compute(config, unit, context)]
    logit = [r for r in rows if r["check"] == "random_logit"]
    assert len(logit) == 2 * 3 and all(r["other"] != r["target"] and 0 <= r["other"] < 10 for r in logit)
    assert [r["target"] for r in logit[:3]] == [1, 2, 3] and all(0 <= r["value"] <= 1 for r in logit)
    cascade = [r for r in rows if r["check"] == "cascading"]
    assert [r["stage"] for r in cascade[::3][:6]] == ["fc6", "fc5", "conv4", "conv3", "conv2", "conv1"]
    assert len(cascade) == 2 * 6 * 3 and all(r["model"] == "efficientnet_lite0" for r in rows)
    assert set(wel_imagenet_csc.plot(rows, config)) == {"random_logit", "cascading"}
    claims = wel_imagenet_csc.claims(rows, config)
    assert [c.paper.split(", ")[-1] for c in claims] == ["random-logit check", "cascading check"]
    assert all("EfficientNet-Lite0" in c.paper and "converging here: lrp_alpha1beta0" in c.ours for c in claims)
    assert "after randomizing the logit layer (fc6)" in claims[1].claim


def test_authors_layout_has_the_same_function_and_csc_reads_before_the_relu():
    """The authors' layout (ReLU layers of their own) computes the same logits; under convention
    "authors_code" CSC starts at the logits and reads conv1's pre-activation, after the ReLU's rule."""
    keras.utils.set_random_seed(0)
    model = sixt_models.convnet(widths=(4, 4, 6, 6, 16))
    authors = sixt_models.authors_layout(model)
    assert [layer.name for layer in authors.layers if isinstance(layer, keras.layers.Activation)] == \
        ["relu1", "relu2", "relu3", "relu4", "relu5"]
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(authors(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    config = dataclasses.replace(wel.PRESETS["quick"], models=("sixt-mnist",), methods=("deconvnet",),
                                 checks=("csc",), csc_images=2, convention="authors_code")
    context = {"sixt-mnist": dict(model=model, x=x, targets=np.array([1, 2, 3]), index=np.arange(3),
                                  patterns=None, csc_model=authors, csc_patterns=None)}
    rows = wel.compute(config, "sixt-mnist/csc/deconvnet", context)
    fused = wel.compute(dataclasses.replace(config, convention="tf_sanity"), "sixt-mnist/csc/deconvnet",
                        dict(context, **{"sixt-mnist": dict(context["sixt-mnist"], csc_model=model)}))
    conv1 = {r["layer"]: r["value"] for r in rows}["conv1"]
    assert conv1 != {r["layer"]: r["value"] for r in fused}["conv1"]


def test_training_steps_study_reads_the_committed_runs_and_draws():
    """experiments.wel_training_steps (CSC at conv1 against training steps) on the committed figures/ runs."""
    import pathlib

    from experiments import wel_training_steps
    figures = pathlib.Path(__file__).resolve().parents[1] / "figures"
    table, accuracy = wel_training_steps.collect(figures)
    assert ("tf_sanity", "sixt-mnist") in table and len(table["tf_sanity", "sixt-mnist"]) >= 3
    assert all(0 <= v <= 1 for steps in table.values() for methods in steps.values() for v in methods.values())
    fig = wel_training_steps.plot(table)
    assert len(fig.axes) >= 4
    assert "| deeplift |" in wel_training_steps.markdown(table, accuracy)
