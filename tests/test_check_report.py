"""The check report (tf_sanity.checks.report) of real results: the HTML parses, its first table is the verdict table
(one row per method, the verdicts of the result), its figures are embedded PNGs and nothing is fetched from elsewhere;
the Markdown's figures exist beside it; results.csv and verdicts.json hold the rows and verdicts."""

import base64
import csv
import html.parser
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from tests import check_results as cr
from tf_sanity.checks import report
from tf_sanity.checks.result import TESTS


class Parsed(html.parser.HTMLParser):
    """Headings, tables (lists of rows of cell texts) and img / link addresses of an HTML page."""

    def __init__(self):
        super().__init__()
        self.headings, self.tables, self.images, self.links = [], [], [], []
        self._text, self._cell = None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("h1", "h2", "h3"):
            self._text = ""
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag in ("a", "link", "script"):
            self.links.append(attrs.get("href") or attrs.get("src"))

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3"):
            self.headings.append(self._text)
            self._text = None
        elif tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._text is not None:
            self._text += data
        if self._cell is not None:
            self._cell += data + " "


@pytest.fixture(scope="module")
def image_result():
    model = cr.image_model()
    return cr.real_result(model, cr.inputs_for(model, 6), orders=("top_down", "independent"),
                          extra_methods=[_edges_method()])


def _edges_method():
    from tf_sanity.checks.inputs import user_method
    return user_method("tests.check_user_functions:edges")


@pytest.fixture(scope="module")
def written(image_result, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    report.write_all(image_result, out)
    return out


def test_the_html_starts_with_the_verdict_table(image_result, written):
    page = Parsed()
    page.feed((written / "report.html").read_text())
    header, *rows = page.tables[0]
    assert [h.strip() for h in header] == ["method", "top_down", "independent"]
    methods = sorted({v.method for v in image_result.verdicts})
    assert len(rows) == len(methods) == 3  # gradient, guided backprop, the user's edges
    labels = {m: report._label(m) for m in methods}
    for row, method in zip(rows, methods):
        assert row[0].strip() == labels[method]
        for cell, order in zip(row[1:], ("top_down", "independent")):
            (v,) = [v for v in image_result.verdicts if (v.method, v.order) == (method, order)]
            assert cell.startswith(v.verdict)
    edges_row = rows[methods.index("edges")]
    assert all(c.startswith("insensitive (fails the check)") for c in edges_row[1:])
    assert "edge-like up to conv1" in edges_row[1]  # the last top-down stage: edge-like all the way


def test_sections_come_in_order_and_name_the_papers(written):
    page = Parsed()
    page.feed((written / "report.html").read_text())
    h = page.headings
    order = ["Verdicts", "The rule, in words", "Similarity over the randomization stages", "Mask grids",
             "The other tests", "Skipped methods", "Settings and seeds", "Notes", "Versions", "Timings"]
    assert [h.index(x) for x in order] == sorted(h.index(x) for x in order)
    for test, (name, paper) in TESTS.items():
        if test != "model_randomization":
            assert f"{name} ({paper})" in h


def test_figures_are_embedded_pngs_and_nothing_is_fetched(written):
    text = (written / "report.html").read_text()
    page = Parsed()
    page.feed(text)
    assert not page.links and "http" not in text.replace("http-equiv", "")
    # 3 similarities (curves) + 2 orders x 2 inputs mask grids (absolute and diverging side by side)
    assert len(page.images) == 3 + 2 * 2
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.format == "PNG" and min(image.size) > 50


def test_the_markdown_links_its_pngs_beside_it(written):
    text = (written / "report.md").read_text()
    names = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(names) == 7 and all((written / n).is_file() for n in names)
    assert text.index("## Verdicts") < text.index("## Similarity") < text.index("## Versions")


def test_csv_and_json_hold_the_rows_and_verdicts(image_result, written):
    with open(written / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(image_result.rows)
    assert list(rows[0])[:4] == ["test", "order", "stage", "stage_index"]
    np.testing.assert_allclose([float(r["value"]) for r in rows], [r["value"] for r in image_result.rows],
                               rtol=1e-12, equal_nan=True)
    data = json.loads((written / "verdicts.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert data["failing"] == image_result.failing() == ["edges"]
    assert len(data["verdicts"]) == len(image_result.verdicts)
    assert data["verdicts"][0]["stages"][-1]["edge"]["high"] == pytest.approx(
        image_result.verdicts[0].stages[-1].edge.high)


def test_a_tabular_result_has_no_mask_grids_and_says_there_are_no_verdicts(tmp_path):
    model = cr.tabular_model()
    result = cr.real_result(model, cr.inputs_for(model, 6), orders=("bottom_up",), input_kind="tabular")
    out = report.write_all(result, tmp_path)
    page = Parsed()
    page.feed(out["html"].read_text())
    assert "Mask grids" not in page.headings and "No verdicts" in out["html"].read_text()
    assert len(page.images) == 2  # spearman_abs and spearman_signed curves


def test_a_baseline_verdict_is_a_second_line_under_its_method(image_result, tmp_path):
    import dataclasses
    second = [dataclasses.replace(v, metric="spearman_nz", verdict="inconclusive")
              for v in image_result.verdicts if v.method == "gradient"]
    result = dataclasses.replace(image_result, baseline_verdicts=second)
    section = report._verdict_section(result)  # the verdict table and its text (no figures to draw)
    page = Parsed()
    page.feed(report.render_html(section))
    names = [row[0].strip() for row in page.tables[0][1:]]
    at = names.index(report._label("gradient"))
    assert names[at + 1] == f"{report._label('gradient')}: on pixels the baseline does not force to zero (spearman_nz)"
    assert all(c.startswith("inconclusive") for c in page.tables[0][1:][at + 1][1:])
    assert len(names) == 4 and result.failing() == image_result.failing()  # failing() reads the first line only
    assert "Sundararajan & Taly" in report.render_markdown(section, tmp_path)


def test_a_stage_without_masks_is_drawn_blank_for_every_input(image_result):
    import dataclasses

    from tf_sanity.checks import report_figures
    masks = dict(image_result.masks)
    del masks[next(k for k in masks if k[1] != "original" and (k[0], "original", k[2]) in masks)]
    figures = report_figures.grid_figures(dataclasses.replace(image_result, masks=masks))
    assert len(figures) == len(report_figures.grid_figures(image_result)) > 1
