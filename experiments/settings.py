"""``tf-sanity reproduce --set KEY=VALUE``: one field of a preset's config changed from the command line."""

import dataclasses

from tf_sanity.errors import SanityError


def _coerce(field, text, current):
    """`text` (from ``--set``) as the type of the config field's `current` value."""
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if isinstance(current, tuple):
            return tuple(t for t in text.split(",") if t)
        return type(current)(text)
    except ValueError:
        raise SanityError(f"--set {field}={text}: expected a {type(current).__name__}") from None


def apply(module, config, settings):
    """`config` with the ``--set KEY=VALUE`` `settings` (a dict of strings) applied to its fields."""
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise SanityError(f"{module.NAME} has no setting {', '.join(unknown)}; valid: {', '.join(sorted(fields))}")
    return dataclasses.replace(config, **{k: _coerce(k, v, getattr(config, k)) for k, v in settings.items()})
