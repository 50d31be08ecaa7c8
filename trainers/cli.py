"""Helpers shared by the command-line tools: parsing flag values the same way everywhere."""

from __future__ import annotations


def parse_range(flag: str, text: str, positive: bool = True) -> tuple[float, float]:
    """Parses ``"LO,HI"`` given to ``flag`` (e.g. ``--lambda_range``).

    Raises:
      ValueError: naming the flag and the expected form: not two numbers, LO >= HI, or (with
        ``positive``) LO <= 0.
    """
    parts = [part.strip() for part in str(text).split(",")]
    try:
        low, high = (float(part) for part in parts)
    except ValueError:
        raise ValueError(f"{flag} must be LO,HI (two numbers), got {text!r}.") from None
    if low >= high or (positive and low <= 0):
        bound = "0 < LO < HI" if positive else "LO < HI"
        raise ValueError(f"{flag} needs {bound}, got {text!r}.")
    return low, high
