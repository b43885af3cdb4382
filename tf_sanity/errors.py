"""The one exception type users see for bad input.

Every check on user input (shapes, NaN, unknown names, missing data or checkpoints) raises
:class:`SanityError` with a single-line message that says what to do. The CLI prints it as
``error: <message>`` without a traceback.
"""


class SanityError(ValueError):
    """Bad input or a missing resource, with a one-line message saying how to fix it."""


def unknown_name(kind, name, valid):
    """Returns a SanityError for an unknown `name` of `kind`, listing the valid names."""
    return SanityError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(set(valid)))}")
