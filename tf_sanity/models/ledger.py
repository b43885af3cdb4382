"""Which trained models this process used: the report names them per experiment, the run's summary line too.

:func:`tf_sanity.models.zoo.load_or_train` and :func:`tf_sanity.models.sixt_models.trained` call :func:`record`
with the model's metadata; ``mark = len(ledger.USED)`` before a piece of work and :func:`since` after it give
the models that piece of work used.
"""

USED = []


def record(name, metadata, schedule):
    """Notes that model `name` (with its cache `metadata`, trained on `schedule`) was used."""
    entry = dict(model=name, profile=metadata.get("profile") if isinstance(metadata.get("profile"), str)
                 else metadata.get("profile", {}).get("name"),
                 labels="random" if metadata.get("random_labels") else "true", schedule=schedule,
                 test_accuracy=metadata.get("test_accuracy"), train_accuracy=metadata.get("train_accuracy"),
                 trained_now=not metadata.get("from_cache", False), training_time_s=metadata.get("training_time_s"))
    USED.append(entry)


def since(mark):
    """The models recorded after the first `mark` entries of :data:`USED`, each once, in order of first use."""
    out = []
    for entry in USED[mark:]:
        if entry not in out:
            out.append(entry)
    return out


def describe(entry):
    """One line, e.g. ``mnist-cnn (true labels, paper_quick: 3,000 steps): test 98.9 %, train 99.1 %``."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    return (f"{entry['model']} ({entry['labels']} labels, {entry['profile']}: {entry['schedule']}): "
            f"test {pct(entry['test_accuracy'])}, train {pct(entry['train_accuracy'])}"
            + (" on the permuted labels" if entry["labels"] == "random" else ""))
