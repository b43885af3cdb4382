"""The README's "check your own model" example runs as written, on a small CNN, and restores the model."""

import contextlib
import io
import pathlib
import re

import numpy as np

from tests.helpers import images, small_cnn, weights_of

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(section):
    text = README.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end if end > 0 else None], flags=re.S)


def test_check_your_own_model_example_runs():
    (code,) = _python_blocks("Check your own model")
    model = small_cnn()
    before = weights_of(model)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), {"model": model, "images": images(2)})
    lines = printed.getvalue().splitlines()
    assert len(lines) == 4 * 3 * 3  # 4 stages (the layers with weights) x 3 methods x 3 similarities
    assert lines[0].split()[:2] == ["1", "output"]
    for a, b in zip(weights_of(model), before):
        np.testing.assert_array_equal(a, b)
