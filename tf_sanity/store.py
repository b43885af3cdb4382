"""Resumable results: each unit of work written atomically as one CSV (+ arrays) as soon as it finishes.

Used by the experiments (``tf-sanity reproduce``, :mod:`experiments.common`) and by the sanity check
(:func:`tf_sanity.checks.run`, ``tf-sanity check --out``): a run stopped by Ctrl-C or a kill continues
where it stopped, and a finished run rerun only re-reads its results. Units live in a folder keyed by a
hash of everything that determines their numbers, so changed settings never reuse old units.
"""

import csv
import hashlib
import io
import json
import os
import pathlib
import re


def atomic_write(path, text):
    """Writes `text` to `path` through a temporary file and a rename (never a half-written file)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def rows_to_csv(rows):
    fields = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    out = io.StringIO()
    writer = csv.DictWriter(out, fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _parse(value):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def read_csv(path):
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _slug(unit):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", unit)


class Store:
    """Per-unit result files of one experiment run (`experiment`, `preset`, `config`) under `out`.

    Units live in a folder keyed by a hash of the config and of `inputs` (the experiment's
    ``inputs(config)``, e.g. which checkpoint), so a changed config (more images, another seed) or
    other inputs never reuse units computed under the old ones.
    """

    def __init__(self, out, name, preset, config=None, inputs="", variant=""):
        self.out = pathlib.Path(out)
        self.stem = f"{name}-{preset}{variant}"
        key = repr(config) + (f"\n{inputs}" if inputs else "")
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        self.units_dir = self.out / ".units" / f"{self.stem}-{digest}"

    def unit_path(self, unit):
        return self.units_dir / f"{_slug(unit)}.csv"

    def done(self, unit):
        return self.unit_path(unit).exists()

    def array_path(self, unit):
        return self.units_dir / f"{_slug(unit)}.npz"

    def write(self, unit, result):
        rows, arrays = result if isinstance(result, tuple) else (result, None)
        if arrays is not None:  # arrays first: a unit counts as done once its rows exist
            import numpy as np
            tmp = self.array_path(unit).with_name(f".{_slug(unit)}.{os.getpid()}.tmp.npz")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(tmp, **arrays)
            os.replace(tmp, self.array_path(unit))
        atomic_write(self.unit_path(unit), rows_to_csv(rows) if rows else "")

    def arrays(self, units):
        import numpy as np
        return {u: dict(np.load(self.array_path(u))) for u in units if self.array_path(u).exists()}

    def rows(self, units):
        out = []
        for unit in units:
            if self.unit_path(unit).stat().st_size:
                out.extend(read_csv(self.unit_path(unit)))
        return out

    def models(self, used):
        """The trained models behind this run's units: `used` now (:func:`tf_sanity.models.ledger.since`) merged
        into those stored by earlier runs of the same units (``models.json``), without per-call fields."""
        path = self.units_dir / "models.json"
        stored = json.loads(path.read_text()) if path.exists() else []
        fresh = [{k: v for k, v in e.items() if k != "trained_now"} for e in used]
        key = lambda e: (e["model"], e["labels"], e["profile"])  # noqa: E731
        merged = {key(e): e for e in stored + fresh}
        if fresh:
            atomic_write(path, json.dumps(list(merged.values()), indent=1))
        return list(merged.values())

    @property
    def results_csv(self):
        return self.out / "results" / f"{self.stem}.csv"
