"""What an input sensor says when a day is not complete (pure)."""

from __future__ import annotations

from collections.abc import Sequence

SHOWN = 5  # names quoted from the day's folder


def incomplete(folder: str, landed: Sequence[str], marker: str) -> str:
    """Why the day in ``folder`` is not complete: nothing landed, or files but no ``marker``."""
    if not landed:
        return f"nothing has landed in {folder}"
    names = sorted(landed)
    more = " ..." if len(names) > SHOWN else ""
    return (
        f"{folder} holds {', '.join(names[:SHOWN])}{more} but no {marker}: its producer has not "
        "said the day is complete"
    )
