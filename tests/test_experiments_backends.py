"""``tf-sanity reproduce --backend pair --models ...``: configs, file names, result keys and the report's comparison."""

import dataclasses
import json

import pytest

from experiments import common, report, sc_cascading_mnist, sc_fig7_conv_sumpool, sc_linear_model
from tf_sanity.errors import SanityError


def test_configure_chooses_models_and_backend_and_says_what_it_leaves_out(capsys):
    config = common.configure(sc_cascading_mnist, "quick", "pair", ["mnist-cnn"])
    assert config.models == ("mnist-cnn",) and config.backend == "pair"
    left_out = ("gradient_vg", "integrated_gradients_vg", "guided_backprop_vg")
    assert not set(left_out) & set(config.methods) and len(config.methods) == len(sc_cascading_mnist.Config.methods) - 3
    assert ", ".join(left_out) in capsys.readouterr().out
    assert common.configure(sc_cascading_mnist, "quick") == sc_cascading_mnist.PRESETS["quick"]
    assert common.method_settings("gradient", config)["backend"] == "pair"
    assert "backend" not in common.method_settings("gradient", sc_cascading_mnist.PRESETS["quick"])


def test_configure_rejects_what_an_experiment_does_not_take():
    with pytest.raises(SanityError, match="no model cifar10-cnn; valid: mnist-cnn"):
        common.configure(sc_cascading_mnist, "quick", models=["cifar10-cnn"])
    with pytest.raises(SanityError, match="sc_fig7_conv_sumpool does not take --backend"):
        common.configure(sc_fig7_conv_sumpool, "quick", backend="pair")
    with pytest.raises(SanityError, match="sc_linear_model has no models"):
        common.configure(sc_linear_model, "quick", models=["mnist-cnn"])
    with pytest.raises(SanityError, match="unknown backend 'captum'"):
        common.configure(sc_linear_model, "quick", backend="captum")


def test_each_backend_and_model_subset_gets_its_own_files_and_units(tmp_path):
    preset = sc_cascading_mnist.PRESETS["quick"]
    stores = [common.store_for(sc_cascading_mnist, "quick", tmp_path,
                               common.configure(sc_cascading_mnist, "quick", b, m), m)
              for b in (None, "pair") for m in (None, ["mnist-cnn"])]
    assert [s.results_csv.name for s in stores] == [
        "sc_cascading_mnist-quick.csv", "sc_cascading_mnist-quick-mnist-cnn.csv",
        "sc_cascading_mnist-quick-pair.csv", "sc_cascading_mnist-quick-mnist-cnn-pair.csv"]
    assert len({s.units_dir for s in stores}) == 4
    assert stores[0].units_dir == common.store_for(sc_cascading_mnist, "quick", tmp_path, preset).units_dir


def test_linear_model_with_the_pair_backend(shared_data, tmp_path):
    config = dataclasses.replace(sc_linear_model.PRESETS["quick"], images=2, size=48, ig_steps=5, samples=3,
                                 data_dir=str(shared_data))
    results = {}
    for backend in ("tf_sanity", "pair"):
        rows, claims = common.run(sc_linear_model, "quick", tmp_path, config=config, progress=False, backend=backend)
        assert all(c.passed for c in claims), [c.ours for c in claims if not c.passed]
        results[backend] = rows
    assert (tmp_path / "results" / "sc_linear_model-quick-pair.csv").exists()
    assert (tmp_path / "sc_linear_model-quick-pair-masks.png").exists()
    saved = json.loads((tmp_path / "claims" / "sc_linear_model-quick-pair.json").read_text())
    assert saved["options"] == {"backend": "pair"} and saved["config"]["backend"] == "pair"
    for a, b in zip(results["tf_sanity"], results["pair"]):
        assert {k: v for k, v in a.items() if k != "value"} == {k: v for k, v in b.items() if k != "value"}
        assert b["value"] == pytest.approx(a["value"], rel=1e-3, abs=1e-5)
    text = report.write(tmp_path).read_text()
    assert "### sc_linear_model [quick]: tf_sanity vs pair" in text and "4 of 4 claims get the same verdict" in text


def test_report_marks_claims_whose_verdicts_differ_between_backends(tmp_path):
    def write(backend, verdicts, methods):
        claims = [dict(paper="P", claim=f"c{i}", paper_value="", ours=f"{backend} {i}", tolerance="", passed=v)
                  for i, v in enumerate(verdicts)]
        options = {"models": ["m"]} | ({"backend": backend} if backend != "tf_sanity" else {})
        name = "x-quick-m" + ("" if backend == "tf_sanity" else f"-{backend}")
        common.atomic_write(tmp_path / "claims" / f"{name}.json", json.dumps(
            dict(experiment="x", title="X", preset="quick", options=options, config={"methods": methods},
                 claims=claims)))

    write("tf_sanity", [True, True], ["a", "a_vg"])
    write("pair", [True, False], ["a"])
    text = report.write(tmp_path).read_text()
    assert "1 of 2 claims get the same verdict (**differs** where marked)" in text
    assert "The pair run leaves out a_vg" in text
    assert "| c0 | tf_sanity 0 | pair 0 | yes / yes |" in text
    assert "| c1 | tf_sanity 1 | pair 1 | **differs**: yes / **no** |" in text
    assert "`tf-sanity reproduce x --preset quick --models m --backend pair`" in text


def test_the_cli_offers_every_registered_backend():
    import argparse

    from experiments import cli
    from tf_sanity.attribution import backends
    subparsers = argparse.ArgumentParser().add_subparsers()
    cli.add_parser(subparsers)
    action = next(a for a in subparsers.choices["reproduce"]._actions if a.dest == "backend")
    assert set(action.choices) == set(backends.BACKENDS) and action.default == backends.DEFAULT_BACKEND


def test_set_changes_config_fields_names_the_files_and_shows_in_the_report(tmp_path):
    from experiments import when_explanations_lie as wel
    config = common.configure(wel, "quick", models=["sixt-mnist"], settings={"sixt_profile": "3k", "images": "5"})
    assert config.sixt_profile == "3k" and config.images == 5 and config.models == ("sixt-mnist",)
    store = common.store_for(wel, "quick", tmp_path, config, ["sixt-mnist"], {"sixt_profile": "3k", "images": "5"})
    assert store.stem == "when_explanations_lie-quick-sixt-mnist-images_5-sixt_profile_3k"
    with pytest.raises(SanityError, match="has no setting depth; valid: .*sixt_profile"):
        common.configure(wel, "quick", settings={"depth": "3"})
    with pytest.raises(SanityError, match="--set images=many: expected a int"):
        common.configure(wel, "quick", settings={"images": "many"})
    data = {"experiment": "x", "preset": "quick", "options": {"set": {"sixt_profile": "3k"}}}
    assert report._command(data) == "tf-sanity reproduce x --preset quick --set sixt_profile=3k"
