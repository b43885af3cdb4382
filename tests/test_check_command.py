"""``tf-sanity check``: bad input is one line, exit 2, nothing run; the command runs on a tiny model of each
input kind and writes the report; ``--dry-run`` stops after the estimate; ``--fail-on insensitive`` exits 1."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests import check_results as cr
from tf_sanity import cli
from tf_sanity.checks import command

REPORT_FILES = ("report.html", "report.md", "results.csv", "verdicts.json")


@pytest.fixture
def core(monkeypatch):
    """Records every call of suite.run and runs the real one."""
    from tf_sanity.checks import suite
    calls, real = [], suite.run

    def run(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(suite, "run", run)
    return calls


def _check(capsys, *argv):
    rc = cli.main(["check", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny models of each kind saved as .keras, with .npy inputs, labels, and a folder of images."""
    d = tmp_path_factory.mktemp("check")
    paths = {}
    for kind, make in (("image", cr.image_model), ("sequence", cr.sequence_model), ("tabular", cr.tabular_model),
                       ("tokens", cr.token_model)):
        model = make()
        model.save(d / f"{kind}.keras")
        np.save(d / f"{kind}.npy", cr.inputs_for(model, 5))
        paths[kind] = d / f"{kind}.keras", d / f"{kind}.npy"
    images = d / "images"
    images.mkdir()
    for k, a in enumerate(cr.inputs_for(cr.image_model(), 3, seed=3)):
        Image.fromarray(a[..., 0].astype(np.uint8)).save(images / f"{k}.png")
    paths["folder"] = paths["image"][0], images
    np.save(d / "labels.npy", np.array([0, 1, 2, 1, 7]))
    paths["labels"] = d / "labels.npy"
    saved = d / "saved_model"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    paths["saved"] = saved
    return paths


def test_check_is_listed_and_its_help_is_quiet():
    done = subprocess.run([sys.executable, "-m", "tf_sanity", "check", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "--fail-on" in done.stdout and done.stderr == ""
    listed = subprocess.run([sys.executable, "-m", "tf_sanity", "--help"], capture_output=True, text=True, timeout=120)
    assert "check" in listed.stdout


def test_the_command_knows_the_librarys_orders():
    from tf_sanity.checks.randomization_test import ORDERS
    assert command.ORDERS == ORDERS


@pytest.mark.parametrize("case, says", [
    (lambda f: [f["image"][0], "--inputs", f["image"][1], "--methods", "gradient,smoothgrad"], "unknown method"),
    (lambda f: [f["image"][0], "--inputs", f["image"][1], "--orders", "top_down,sideways"], "unknown order"),
    (lambda f: [f["image"][0].with_name("none.keras"), "--inputs", f["image"][1]], "no model file"),
    (lambda f: [f["saved"], "--inputs", f["image"][1]], "SavedModel"),
    (lambda f: [f["image"][0], "--inputs", f["tabular"][1]], "but the model takes"),
    (lambda f: [f["image"][0], "--inputs", f["image"][1], "--targets", f["labels"]], "must lie in"),
    (lambda f: [f["image"][0], "--inputs", f["image"][1], "--preprocess", "scale"], "unknown preprocessing"),
    (lambda f: [f["image"][0], "--inputs", f["image"][1], "--method", "tests.check_user_functions:missing"],
     "no function"),
    (lambda f: [f["image"][0], "--inputs", f["image"][1], "--seeds", "0,x"], "--seeds"),
    (lambda f: [f["image"][0], "--inputs", f["image"][1], "--limit", "0"], "--limit"),
    (lambda f: [f["image"][0], "--inputs", f["image"][1], "--smprt-n", "0"], "--smprt-n"),
    (lambda f: [f["image"][0], "--inputs", f["image"][1], "--set", "integrated_gradients.stepz=4"], "unknown setting"),
    (lambda f: [f["image"][0], "--inputs", f["image"][1], "--set", "steps=4"], "METHOD.SETTING=VALUE"),
    (lambda f: [f["image"][0], "--inputs", f["image"][1], "--set", "integrated_gradients.steps=ten"], "an integer"),
    (lambda f: [f["image"][0], "--inputs", f["image"][1], "--set", "integrated_gradients.steps=0"], "at least 1"),
    (lambda f: [f["image"][0], "--inputs", f["image"][1], "--limit", "17"], "more than the quick preset's 16"),
], ids=["method", "order", "missing", "savedmodel", "shape", "labels", "preprocess", "user-method", "seeds", "limit",
        "smprt-n", "set-name", "set-form", "set-type", "set-count", "limit-over-preset"])
def test_bad_input_is_one_line_and_runs_nothing(files, core, capsys, tmp_path, case, says):
    out = tmp_path / "out"
    rc, _, err = _check(capsys, *case(files), "--out", out)
    assert rc == 2 and err.startswith("error: ") and says in err and err.count("\n") == 1, err
    assert not core and not out.exists()


def test_nan_inputs_and_a_lambda_model_are_refused(files, core, capsys, tmp_path):
    import keras
    x = np.load(files["tabular"][1])
    x[1, 2] = np.inf
    np.save(tmp_path / "inf.npy", x)
    rc, _, err = _check(capsys, files["tabular"][0], "--inputs", tmp_path / "inf.npy")
    assert rc == 2 and "NaN or inf" in err and err.count("\n") == 1
    marker = tmp_path / "ran.txt"
    inp = keras.Input((8,))
    hidden = keras.layers.Lambda(eval(f"lambda t: (open({str(marker)!r}, 'w').close(), t)[1]"))(inp)
    keras.Model(inp, keras.layers.Dense(3)(hidden)).save(tmp_path / "evil.keras")
    marker.unlink()
    rc, _, err = _check(capsys, tmp_path / "evil.keras", "--inputs", files["tabular"][1])
    assert rc == 2 and "--trust-model" in err and err.count("\n") == 1
    assert not marker.exists() and not core


@pytest.mark.parametrize("kind", ["folder", "image", "sequence", "tabular", "tokens"])
def test_the_command_runs_on_each_input_kind(files, core, capsys, tmp_path, kind):
    model, data = files[kind]
    rc, out, err = _check(capsys, model, "--inputs", data, "--methods", "gradient", "--orders", "top_down",
                          "--limit", 3, "--out", tmp_path, "--quiet")
    assert rc == 0, err
    assert "estimate:" in out and "passes x" in out and out.strip().splitlines()[-1].startswith("done in")
    (call,) = core
    assert call["inputs"].shape[0] == 3 and call["input_kind"] == {"folder": "image"}.get(kind, kind)
    assert call["orders"] == ("top_down",) and call["methods"] == ["gradient"] and call["out"] == tmp_path
    assert all((tmp_path / f).is_file() for f in REPORT_FILES)


def test_dry_run_prints_the_estimate_and_stops(files, core, capsys, tmp_path):
    rc, out, _ = _check(capsys, files["tabular"][0], "--inputs", files["tabular"][1], "--dry-run", "--out", tmp_path / "out")
    assert rc == 0 and "estimate:" in out and not core and not (tmp_path / "out").exists()


def test_set_changes_a_methods_setting_and_the_estimate(files, core, capsys):
    passes = []
    for extra in ([], ["--set", "integrated_gradients.steps=5"]):
        rc, out, _ = _check(capsys, files["tabular"][0], "--inputs", files["tabular"][1], "--methods",
                            "integrated_gradients", "--dry-run", *extra)
        assert rc == 0
        passes.append(int(out.split("estimate: ")[1].split(" passes")[0].replace(",", "")))
    assert passes[1] * 50 == passes[0] * 5  # IG's passes scale with its steps (default 50)


def test_fail_on_insensitive_exits_1_for_a_method_that_ignores_the_model(files, core, capsys, tmp_path):
    argv = [files["image"][0], "--inputs", files["image"][1], "--methods", "gradient", "--method", "tests.check_user_functions:edges",
            "--orders", "top_down", "--limit", 4, "--quiet", "--out", tmp_path]
    rc, out, err = _check(capsys, *argv, "--fail-on", "insensitive")
    assert rc == 1, err
    assert "edges" in out.strip().splitlines()[-1]  # the summary names the failing method
    assert [m.name for m in core[0]["extra_methods"]] == ["edges"]
    rc, _, _ = _check(capsys, *argv)
    assert rc == 0
