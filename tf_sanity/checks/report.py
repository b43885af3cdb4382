"""The report of a check run: ``report.html`` (self-contained), ``report.md``, ``results.csv`` and
``verdicts.json`` (issue 17, item 6).

The report is built once as a list of blocks (headings, text, tables, figures) and rendered twice:
as HTML with the figures embedded as base64 PNG and inline CSS (opens from disk, no server), and as
Markdown with the figures as PNG files beside it. Its sections, in order: the verdict table (one
row per method, a verdict per order, the stage up to which the method stays edge-like, and the rule
in words from :mod:`tf_sanity.checks.verdict`); the numbers behind the verdicts; the curves of each
similarity over the stages of each order with the two controls (:mod:`tf_sanity.checks.controls`);
mask grids (method x stage, absolute and diverging) for the first inputs (images only); the other
tests, each named after its paper (:data:`~tf_sanity.checks.result.TESTS`); skipped methods;
settings, seeds and notes; versions; timings.
"""

import base64
import csv
import dataclasses
import html
import io
import json
import math
import pathlib
import re
import time

from tf_sanity.checks.controls import EDGE_DETECTOR, IGNORING_WORDS, INPUT_CONTROL
from tf_sanity.checks.report_figures import curve_figures, grid_figures, label as _label
from tf_sanity.checks.result import TESTS

VERDICT_CLASS = {"sensitive to the parameters": "ok", "insensitive (fails the check)": "fail"}
ROW_KEYS = ("test", "order", "stage", "stage_index", "method", "metric", "seed", "image", "value")
STYLE = """body{font:14px/1.45 system-ui,sans-serif;max-width:1150px;margin:24px auto;padding:0 16px;color:#222}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:28px}
h3{font-size:15px;margin-bottom:4px}table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
td.ok{background:#e3f4e3}td.fail{background:#f9dcdc}td.undecided{background:#f4f4f4}
code{background:#f3f3f3;padding:0 3px;border-radius:3px;font-size:12px}
figure{margin:10px 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:12px;color:#555}
.small{font-size:12px;color:#555}"""


@dataclasses.dataclass
class Cell:
    """A table cell with an optional CSS class (the verdict colours) and a detail line."""

    text: str
    css: str = ""
    detail: str = ""


def _rst(text):
    """Inline reStructuredText of docstrings as Markdown: ``x`` and :role:`x` -> `x`."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def rule_in_words():
    """The verdict rule as paragraphs and bullet lists, from :mod:`tf_sanity.checks.verdict`'s docstring."""
    from tf_sanity.checks import verdict
    blocks = []
    for p in verdict.__doc__.split("\n\n")[1:]:
        lines = [line.strip() for line in p.strip().splitlines()]
        if lines and lines[0].startswith("* "):
            items = []
            for line in lines:
                if line.startswith("* "):
                    items.append(line[2:])
                else:
                    items[-1] += " " + line
            blocks.append(("list", [_rst(i) for i in items]))
        else:
            blocks.append(("text", _rst(" ".join(lines)).removeprefix("The rule, in words. ")))
    return blocks


def _fmt(x, digits=3):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _orders(result):
    return [o for o in ("top_down", "bottom_up", "independent") if any(v.order == o for v in result.verdicts)]


def _ignoring(result):
    """The control that ignores the model in this result: the edge detector (images) or the input control."""
    return EDGE_DETECTOR if result.settings.get("input_kind", "image") == "image" else INPUT_CONTROL


def _verdict_cell(v, like):
    until = f"{like} up to {v.edge_like_until}" if v.edge_like_until else f"never {like}"
    return Cell(v.verdict, VERDICT_CLASS.get(v.verdict, "undecided"), f"{until}; {v.reason}")


BASELINE_NOTE = ("{names} multiply by (input - baseline): wherever the input equals the baseline "
                 "(e.g. MNIST's black background) their maps are zero for every model, so those pixels agree across "
                 "model states and raise {metric} whatever the network does (Sundararajan & Taly 2018, Sec. 3.1). "
                 "Their second line reads the same rule on `{nz}`, the pixels the baseline forces to zero left out; "
                 "the verdict (and --fail-on) stays on the paper's `{metric}`.")


def _verdict_section(result):
    orders = _orders(result)
    by = {(v.method, v.order): v for v in result.verdicts}
    second = {(v.method, v.order): v for v in result.baseline_verdicts}
    like = "edge-like" if _ignoring(result) == EDGE_DETECTOR else "input-like"
    metric = result.verdicts[0].metric if result.verdicts else result.settings.get("verdict_metric", "spearman_abs")
    nz = result.settings.get("baseline_metric", "spearman_nz")
    rows = []
    for method in sorted({v.method for v in result.verdicts}):
        cells = [Cell(_label(method))]
        for order in orders:
            v = by.get((method, order))
            cells.append(_verdict_cell(v, like) if v is not None else Cell("-"))
        rows.append(cells)
        if any((method, o) in second for o in orders):
            cells = [Cell(f"{_label(method)}: on pixels the baseline does not force to zero ({nz})")]
            for order in orders:
                v = second.get((method, order))
                cells.append(_verdict_cell(v, like) if v is not None else Cell("-"))
            rows.append(cells)
    ignoring = IGNORING_WORDS[_ignoring(result)]
    blocks = [("heading", 2, "Verdicts"),
              ("text", f"Model parameter randomization ({TESTS['model_randomization'][1]}), read on `{metric}` "
                       f"between the two controls ({ignoring} and the random attribution): one row per method, "
                       "one column per order.")]
    if rows:
        blocks.append(("table", ["method", *orders], rows))
    else:
        blocks.append(("text", "No verdicts: the run produced none (see the skipped methods and notes below)."))
    if second:
        names = " and ".join(_label(m) for m in sorted({m for m, _ in second}))
        blocks.append(("text", BASELINE_NOTE.format(names=names, metric=metric, nz=nz)))
    blocks += [("heading", 3, "The rule, in words")] + rule_in_words()
    return blocks


def _numbers_section(result):
    rows = []
    for v in result.verdicts:
        last = v.stages[-1] if v.stages else None
        if last is None:
            continue
        iv = lambda i: f"{i.estimate:.3f} [{i.low:.3f}, {i.high:.3f}]"  # noqa: E731
        rows.append([Cell(_label(v.method)), Cell(v.order), Cell(last.stage), Cell(iv(last.method)),
                     Cell(iv(last.edge)), Cell(iv(last.random)), Cell(f"[{last.band[0]:.3f}, {last.band[1]:.3f}]"),
                     Cell(last.kind), Cell(", ".join(map(str, v.seeds))), Cell(str(v.n_inputs))])
    if not rows:
        return []
    level = result.verdicts[0].level
    return [("heading", 2, "The numbers behind the verdicts"),
            ("text", f"At the last stage of each order: the median over inputs with its {level:.0%} bootstrap interval, "
                     "enveloped over seeds, for the method and the two controls, and the halfway band."),
            ("table", ["method", "order", "stage", "method's median", IGNORING_WORDS[_ignoring(result)], "random",
                       "halfway band", "class",
                       "seeds", "inputs"], rows)]


def _figure_section(title, text, figures):
    if not figures:
        return []
    return [("heading", 2, title), ("text", text)] + [("figure", *f) for f in figures]


def _tests_section(result):
    blocks = [("heading", 2, "The other tests")]
    by_test = {}
    for s in result.summaries:
        by_test.setdefault(s["test"], []).append(s)
    for test, (name, paper) in TESTS.items():
        if test == "model_randomization":
            continue
        blocks.append(("heading", 3, f"{name} ({paper})"))
        summaries = by_test.get(test)
        if not summaries:
            ran = any(r.get("test") == test for r in result.rows)
            hint = " (give --train or --random-label-model)" if test == "data_randomization" else ""
            blocks.append(("text", "See the curves above." if ran else f"Not run in this check{hint}."))
            continue
        passed = {True: "passes", False: "fails", None: "-"}
        blocks.append(("table", ["method", "value", "interval", "result", "note"], [
            [Cell(_label(s["method"])), Cell(_fmt(s.get("value"))),
             Cell(f"[{_fmt(s.get('low'))}, {_fmt(s.get('high'))}]"),
             Cell(passed[s.get("passed")], {True: "ok", False: "fail"}.get(s.get("passed"), "")),
             Cell(s.get("note", ""))] for s in summaries]))
    return blocks


def _record_section(result):
    blocks = []
    if result.skipped:
        blocks += [("heading", 2, "Skipped methods"),
                   ("table", ["method", "why"], [[Cell(_label(m)), Cell(why)] for m, why in result.skipped.items()])]
    settings = {k: v for k, v in result.settings.items() if k != "notes"}
    blocks += [("heading", 2, "Settings and seeds"),
               ("table", ["setting", "value"], [[Cell(k), Cell(_value(v))] for k, v in settings.items()])]
    if result.settings.get("notes"):
        blocks += [("heading", 2, "Notes"), ("list", list(result.settings["notes"]))]
    blocks += [("heading", 2, "Versions"),
               ("table", ["package", "version"], [[Cell(k), Cell(str(v))] for k, v in result.versions.items()])]
    t = result.timings
    rows = [[Cell(k), Cell(_fmt(v, 4))] for k, v in t.items()]
    for suffix in ("_s", "_cpu_s"):  # the explanations against their pass floor, wall and process CPU time
        if t.get("floor" + suffix) and t.get("explain" + suffix):
            rows.append([Cell(f"explain{suffix} / floor{suffix}"), Cell(f"{t['explain' + suffix] / t['floor' + suffix]:.2f}")])
    blocks += [("heading", 2, "Timings"),
               ("text", "Wall seconds (`_s`) and process CPU seconds (`_cpu_s`, what a shared machine's load changes "
                        "least); the floor is passes x the fastest measured pass."),
               ("table", ["what", "value"], rows)]
    return blocks


def _value(v):
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_value(x)}" for k, x in v.items()) or "-"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v) or "-"
    return "-" if v is None else str(v)


def blocks(result):
    """The report as a list of blocks (see the module docstring for the order)."""
    s = result.settings
    intro = (f"{s.get('n_inputs', '?')} {s.get('input_kind', '')} inputs, preset {s.get('preset', '?')}, "
             f"seeds {_value(s.get('seeds'))}. ")
    failing = result.failing()
    intro += (f"Methods that fail the check: {', '.join(map(_label, failing))}." if failing
              else "No method fails the check.")
    control_note = (f"Grey curves are the controls: {IGNORING_WORDS[_ignoring(result)]} (dashed, ignores the model: "
                    "the \"fails\" end) and a random attribution drawn afresh for each model state (dotted: the "
                    "\"changed completely\" end). Mean +- 1 std over inputs; the first point is the trained model.")
    grid_note = ("Rows: methods; columns: the trained model ('original') then each stage. Absolute: |mask| summed "
                 "over channels, clipped at the 99th percentile; diverging: positive red, negative blue.")
    wall, cpu = time.perf_counter(), time.process_time()
    curves, grids = curve_figures(result), grid_figures(result)
    result.timings["figures_s"] = time.perf_counter() - wall  # the figures' cost, beside the passes'
    result.timings["figures_cpu_s"] = time.process_time() - cpu
    return ([("heading", 1, f"Sanity check of {result.model_name}"), ("text", intro)]
            + _verdict_section(result) + _numbers_section(result)
            + _figure_section("Similarity over the randomization stages", control_note, curves)
            + _figure_section("Mask grids", grid_note, grids)
            + _tests_section(result) + _record_section(result))


def _inline_html(text):
    text = html.escape(text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", re.sub(r"`([^`]+)`", r"<code>\1</code>", text))


def _html_cell(c, tag="td"):
    css = f' class="{c.css}"' if c.css else ""
    detail = f'<div class="small">{_inline_html(c.detail)}</div>' if c.detail else ""
    return f"<{tag}{css}>{_inline_html(c.text)}{detail}</{tag}>"


def render_html(items):
    out = []
    for kind, *rest in items:
        if kind == "heading":
            out.append(f"<h{rest[0]}>{_inline_html(rest[1])}</h{rest[0]}>")
        elif kind == "text":
            out.append(f"<p>{_inline_html(rest[0])}</p>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in rest[0]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in rest[0])
            body = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in rest[1])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "figure":
            name, png, caption = rest
            data = base64.b64encode(png).decode("ascii")
            out.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{_inline_html(caption)}</figcaption></figure>")
    title = next((r[1] for k, *r in items if k == "heading"), "tf_sanity check")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")


def _md_cell(c):
    text = c.text + (f"<br>{c.detail}" if c.detail else "")
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(items, folder):
    """Markdown of `items`; figures are written as PNG files into `folder` (beside the .md)."""
    out = []
    for kind, *rest in items:
        if kind == "heading":
            out.append(f"{'#' * rest[0]} {rest[1]}")
        elif kind == "text":
            out.append(rest[0])
        elif kind == "list":
            out.append("\n".join(f"- {i}" for i in rest[0]))
        elif kind == "table":
            lines = ["| " + " | ".join(rest[0]) + " |", "|" + "---|" * len(rest[0])]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rest[1]]
            out.append("\n".join(lines))
        elif kind == "figure":
            name, png, caption = rest
            (pathlib.Path(folder) / name).write_bytes(png)
            out.append(f"![{caption}]({name})\n\n*{caption}*")
    return "\n\n".join(out) + "\n"


def write_html(result, path, *, items=None):
    """Writes the self-contained HTML report to `path`; returns the path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(items if items is not None else blocks(result)), encoding="utf-8")
    return path


def write_markdown(result, path, *, items=None):
    """Writes the Markdown report to `path`, its figures as PNG files beside it; returns the path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(items if items is not None else blocks(result), path.parent), encoding="utf-8")
    return path


def write_csv(result, path):
    """Writes the tidy rows as CSV (the keys of :mod:`tf_sanity.checks.result`'s schema first)."""
    keys = [k for k in ROW_KEYS if any(k in r for r in result.rows)]
    keys += sorted({k for r in result.rows for k in r} - set(keys))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=keys, restval="")
        writer.writeheader()
        writer.writerows(result.rows)
    return pathlib.Path(path)


def _json_safe(x):
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:  # numpy scalars
        return _json_safe(x.item())
    return x if isinstance(x, (str, int, bool, type(None))) else str(x)


def write_json(result, path):
    """Writes the verdicts (with the numbers behind them), the other tests' summaries, the skipped methods,
    the settings, versions and timings as JSON (NaN as null)."""
    payload = {"model": result.model_name, "failing": result.failing(),
               "verdicts": [dataclasses.asdict(v) for v in result.verdicts],
               "baseline_verdicts": [dataclasses.asdict(v) for v in result.baseline_verdicts],
               "summaries": result.summaries,
               "skipped": result.skipped, "settings": result.settings, "versions": result.versions,
               "timings": result.timings}
    pathlib.Path(path).write_text(json.dumps(_json_safe(payload), indent=1), encoding="utf-8")
    return pathlib.Path(path)


def write_all(result, out):
    """Writes ``report.html``, ``report.md`` (+ its PNGs), ``results.csv`` and ``verdicts.json`` into `out`."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = blocks(result)
    return {"html": write_html(result, out / "report.html", items=items),
            "markdown": write_markdown(result, out / "report.md", items=items),
            "csv": write_csv(result, out / "results.csv"), "json": write_json(result, out / "verdicts.json")}
