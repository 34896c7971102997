"""File names that carry a dataset's parameters, as the original PAIG files do.

A template such as ``color_spring_vx{speed_x}_vy{speed_y}_sl{length}_r{radius}_k{k}_e{l}`` formats
to ``color_spring_vx8_vy8_sl12_r2_k4_e6`` and parses back. Numbers below 1 drop their decimal
point after the leading zero (0.5 → ``05``, as in the original ``dt05``); other numbers print in
their shortest form (8.0 → ``8``, 4.5 → ``4.5``).
"""
from __future__ import annotations

import re
import string

__all__ = ["NameTemplate"]

_NUMBER = r"(?:0[0-9]+|[0-9]+(?:\.[0-9]+)?)"


def format_number(value: float) -> str:
    if 0 < value < 1:
        return "0" + f"{value:g}".removeprefix("0.")
    return f"{value:g}"


def parse_number(token: str) -> float:
    if len(token) > 1 and token.startswith("0") and "." not in token:
        return float("0." + token[1:])
    return float(token)


class NameTemplate:
    """A file-name stem with ``{field}`` slots for numbers."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.fields = [field for _, field, _, _ in string.Formatter().parse(template) if field]
        pattern = "".join(re.escape(text) + (f"(?P<{field}>{_NUMBER})" if field else "")
                          for text, field, _, _ in string.Formatter().parse(template))
        self._regex = re.compile(pattern + r"\.npz")

    def format(self, values: dict[str, float]) -> str:
        return self.template.format(**{field: format_number(values[field]) for field in self.fields}) + ".npz"

    def parse(self, file_name: str) -> dict[str, float] | None:
        match = self._regex.fullmatch(file_name)
        if match is None:
            return None
        return {field: parse_number(token) for field, token in match.groupdict().items()}
