"""Every chapter of docs/tutorial runs as written: its ```python blocks in order, in one namespace.

The chapters' own asserts check their by-hand TensorFlow against ``tf_sanity`` (e.g. the hand-written
guided ReLU against ``tf_sanity.explain(..., "guided_backprop")``), so a chapter whose code or claims
break fails here. They run on the real MNIST files (``shared_data``) and the tutorial's small CNN,
trained once per session into a temporary cache (never the paper models of ``~/.cache/tf_sanity``);
figures go to a temporary folder. Fenced blocks of other languages (the ``bash`` command of chapter 9)
are not run.
"""

import pathlib
import re
import sys

import pytest

TUTORIAL = pathlib.Path(__file__).resolve().parents[1] / "docs" / "tutorial"
CHAPTERS = sorted(TUTORIAL.glob("[0-9][0-9]_*.md"))
MAX_CODE_LINES = 80  # issue 20: at most about 80 lines of code per chapter


@pytest.fixture(scope="session")
def tutorial(shared_data, tmp_path_factory):
    """The tutorial helper module, with data, model cache and figure folder set for the session."""
    import matplotlib

    matplotlib.use("Agg")
    out = tmp_path_factory.mktemp("tutorial")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TF_SANITY_DATA_DIR", str(shared_data))
        patch.setenv("TF_SANITY_TUTORIAL_CACHE", str(out / "cache"))
        patch.setenv("TF_SANITY_TUTORIAL_OUT", str(out / "figures"))
        patch.syspath_prepend(str(TUTORIAL))
        import tutorial_data

        yield tutorial_data
    sys.modules.pop("tutorial_data", None)


def test_there_are_nine_chapters():
    assert [c.name[:2] for c in CHAPTERS] == [f"{k:02d}" for k in range(1, 10)]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapter_runs(tutorial, chapter):
    text = chapter.read_text()
    blocks = tutorial.code_blocks(chapter)
    assert blocks, "a chapter without Python code"
    assert sum(1 for b in blocks for line in b.splitlines() if line.strip()) <= MAX_CODE_LINES
    for link in re.findall(r"\]\((\.\./\.\./[^)#]+)\)", text):      # links to the library and the repo
        assert (chapter.parent / link).resolve().exists(), f"{chapter.name}: dead link {link}"
    assert re.search(r"\*\*Paper:\*\*", text) and re.search(r"\*\*Library:\*\*", text)

    tutorial.run_chapter(chapter)

    shown = re.findall(r"\]\(figures/([^)]+\.png)\)", text)
    assert shown, "every chapter shows a figure"
    for name in shown:                            # the figure the text shows is the one its code writes
        assert tutorial.figure_path(name).is_file(), f"{chapter.name} shows {name} but did not write it"
        assert (TUTORIAL / "figures" / name).is_file(), f"{name} is not committed under docs/tutorial/figures"
