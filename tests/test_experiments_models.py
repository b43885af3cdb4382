"""sc_models: accuracy rows and claims from the zoo's metadata (training itself is tested in test_training)."""

import dataclasses
import json

from experiments import common, sc_models
from tf_sanity.models import zoo


def _fake_zoo(monkeypatch, accuracies):
    calls = []

    def load_or_train(name, *, random_labels, profile, **kw):
        calls.append((name, random_labels, profile))
        test, train, cap = accuracies[(name, random_labels, profile)]
        return None, dict(test_accuracy=test, train_accuracy=train, training_time_s=1.0, steps=10, epochs=1,
                          stopping=dict(cap_hit=cap))
    monkeypatch.setattr(zoo, "load_or_train", load_or_train)
    monkeypatch.setattr(sc_models, "requires", lambda config: None)  # no data needed: the zoo is faked
    return calls


def test_accuracy_claims_pass_and_fail_on_the_papers_floors(tmp_path, monkeypatch):
    runs = ("mnist-cnn/true/paper", "mnist-mlp/true/paper", "mnist-mlp/true/original_code",
            "fashion_mnist-mlp/true/paper", "mnist-mlp/random/original_code", "fashion_mnist-mlp/random/original_code")
    config = dataclasses.replace(sc_models.PRESETS["quick"], runs=runs)
    calls = _fake_zoo(monkeypatch, {("mnist-cnn", False, "paper"): (0.9905, 0.995, False),
                                    ("mnist-mlp", False, "paper"): (0.980, 0.99, False),  # below the 98.3 % floor
                                    ("mnist-mlp", False, "original_code"): (0.984, 1.0, False),
                                    ("fashion_mnist-mlp", False, "paper"): (0.89, 0.93, False),
                                    ("mnist-mlp", True, "original_code"): (0.101, 0.96, False),
                                    ("fashion_mnist-mlp", True, "original_code"): (0.10, 0.60, True)})  # cap hit
    rows, claims = common.run(sc_models, "quick", tmp_path, config=config, progress=False)
    assert len(calls) == 6 and len(rows) == 18
    verdict = {c.claim: c.passed for c in claims if "permuted" not in c.claim}
    assert verdict == {"mnist-cnn test accuracy (paper)": True, "mnist-mlp test accuracy (paper)": False,
                       "mnist-mlp test accuracy (original_code)": True,
                       "fashion_mnist-mlp test accuracy (paper; the paper gives no number)": None}
    random = [c for c in claims if "permuted" in c.claim]
    assert [c.passed for c in random] == [True, False]
    assert "epoch cap hit" in random[1].ours and "epoch cap hit" not in random[0].ours
    assert (tmp_path / "sc_models-quick.png").exists()


def test_quick_schedule_models_are_checked_against_a_stated_quick_floor(tmp_path, monkeypatch):
    runs = ("mnist-cnn/true/paper_quick", "mnist-mlp/true/paper_quick")
    config = dataclasses.replace(sc_models.PRESETS["quick"], runs=runs)
    _fake_zoo(monkeypatch, {("mnist-cnn", False, "paper_quick"): (0.973, 0.99, False),  # paper 99.2 - 2 = 97.2
                            ("mnist-mlp", False, "paper_quick"): (0.965, 0.98, False)})  # below 98.7 - 2 = 96.7
    _, claims = common.run(sc_models, "quick", tmp_path, config=config, progress=False)
    assert [c.passed for c in claims] == [True, False]
    assert claims[0].claim == "mnist-cnn test accuracy (paper_quick: 3,000 steps instead of 20,000 steps)"
    assert claims[0].paper_value == "99.2 % (20,000 steps)" and "paper - 2.0 points" in claims[0].tolerance


def test_report_counts_verdicts_and_lists_every_claim(tmp_path):
    from experiments import report
    claims = [dict(paper="P", claim=f"c{i}", paper_value="1", ours="2", tolerance="t", passed=v)
              for i, v in enumerate([True, True, False, None])]
    (tmp_path / "claims").mkdir()
    common.atomic_write(tmp_path / "claims" / "x-quick.json", json.dumps(
        dict(experiment="x", title="X figure", preset="quick", config={}, claims=claims)))
    common.atomic_write(tmp_path / "claims" / "y-quick-efficientnet_lite0.json", json.dumps(
        dict(experiment="y", title="Y figure", preset="quick", config={"model": "efficientnet_lite0"}, claims=[])))
    text = report.write(tmp_path).read_text()
    assert "| x | quick |  |  | 2 | 1 | 1 |" in text
    assert "| y | quick | EfficientNet-Lite0 (a trained stand-in for Inception v3) |  | 0 | 0 | 0 |" in text
    assert all(f"| P | c{i} |" in text for i in range(4)) and "| **no** |" in text
