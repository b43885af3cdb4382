"""The quick preset's training schedules (issue 18): they resolve, the paper preset never uses them, the report
names the models each experiment used, and ``reproduce`` ends with a summary line."""

import dataclasses
import json
import re
import types

import pytest

import experiments
from experiments import cli, common, report
from tf_sanity.models import ledger, sixt_models, training

ZOO_EXPERIMENTS = {"sc_cascading_mnist": "profile", "sc_fig6_data_randomization": "profile",
                   "st_fig3_signed_ig": "profile", "when_explanations_lie": "zoo_profile"}


@pytest.mark.parametrize("name, field", ZOO_EXPERIMENTS.items())
def test_quick_presets_train_on_quick_schedules_and_paper_presets_on_full_ones(name, field):
    module = experiments.get(name)
    quick, paper = (training.get_profile(getattr(module.PRESETS[p], field)) for p in ("quick", "paper"))
    assert quick.name.endswith("_quick") and quick.steps == training.QUICK_STEPS
    assert not paper.name.endswith("_quick") and paper == training.PROFILES[paper.name]
    assert paper.steps in (None, 20_000)


def test_sc_models_quick_runs_are_the_quick_schedules():
    from experiments import sc_models
    quick = [run.split("/")[2] for run in sc_models.PRESETS["quick"].runs]
    paper = [run.split("/")[2] for run in sc_models.PRESETS["paper"].runs]
    assert set(quick) == {"paper_quick", "original_code_quick"}
    assert set(paper) == {"paper", "original_code"}
    for profile in quick + paper:
        training.get_profile(profile)  # resolves


def test_schedules_are_stated():
    quick = training.PROFILES["original_code_quick"]
    assert training.PROFILES["paper"].schedule() == "20,000 steps"
    assert training.PROFILES["original_code"].schedule() == "50 epochs"
    assert quick.schedule() == "3,000 steps"
    assert quick.schedule(random_labels=True) == "until train accuracy > 95 % on 5,000 images (cap 100 epochs)"
    assert sixt_models.PROFILES["cpu"].schedule() == "800 steps"


def test_cache_names_keep_the_registered_profiles_and_tell_other_schedules_apart():
    paper = training.PROFILES["paper"]
    assert paper.cache_name() == "paper"  # the folder of models cached before issue 18
    assert training.PROFILES["paper_quick"].cache_name() == "paper_quick"
    shorter = dataclasses.replace(paper, steps=2_000)
    assert shorter.cache_name().startswith("paper-") and shorter.cache_name() != paper.cache_name()
    assert "random_labels_images" not in paper.settings()  # metadata of older models still matches


def _fake_experiment(tmp_path):
    """A one-unit experiment that 'uses' a model through the ledger, as zoo.load_or_train does."""

    @dataclasses.dataclass(frozen=True)
    class Config:
        seed: int = 0

    def compute(config, unit, context):
        ledger.record("mnist-cnn", dict(profile="paper_quick", random_labels=False, test_accuracy=0.987,
                                        train_accuracy=0.99, from_cache=False, training_time_s=61.0), "3,000 steps")
        ledger.record("mnist-mlp", dict(profile="original_code_quick", random_labels=True, test_accuracy=0.1,
                                        train_accuracy=0.96, from_cache=True, training_time_s=30.0),
                      "until train accuracy > 95 % on 5,000 images (cap 100 epochs)")
        return [dict(unit=unit, value=1.0)]

    return types.SimpleNamespace(
        NAME="fake_exp", TITLE="A fake experiment", PRESETS={"quick": Config()}, requires=lambda config: None,
        units=lambda config: ["only"], compute=compute, plot=lambda rows, config: {},
        claims=lambda rows, config: [common.Claim("paper", "claim", "ours", True)])


def test_reproduce_prints_a_summary_and_the_report_names_the_models(tmp_path, monkeypatch, capsys):
    fake = _fake_experiment(tmp_path)
    monkeypatch.setattr(experiments, "get", lambda name: fake)
    args = types.SimpleNamespace(names=["fake_exp"], list=False, preset="quick", out=str(tmp_path), data_dir=None,
                                 checkpoint=None, model=None, models=None, backend="tf_sanity", settings=[])
    assert cli.reproduce(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"summary: fake_exp \d+ s; total \d+ s; models trained: mnist-cnn \(true labels, "
                        r"paper_quick: 3,000 steps\): test 98\.7 %, train 99\.0 %, 61 s", last), last
    text = (tmp_path / "REPORT.md").read_text()
    assert "- mnist-cnn (true labels, paper_quick: 3,000 steps): test 98.7 %, train 99.0 %" in text
    assert ("- mnist-mlp (random labels, original_code_quick: until train accuracy > 95 % on 5,000 images "
            "(cap 100 epochs)): test 10.0 %, train 96.0 % on the permuted labels") in text

    # A rerun reuses the stored unit: no model is loaded, yet the report still names the models.
    assert cli.reproduce(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("models trained: none")
    claims = json.loads(next((tmp_path / "claims").glob("*.json")).read_text())
    assert [m["model"] for m in claims["models"]] == ["mnist-cnn", "mnist-mlp"]
    assert "mnist-cnn (true labels, paper_quick" in report.write(tmp_path).read_text()


def test_summary_says_which_experiments_were_skipped():
    assert cli.summary({"a": 12.4, "b": None}, []) == "summary: a 12 s, b skipped; total 12 s; models trained: none"
