"""Argument types shared by the `replica` subcommands: each rejects a bad value with one line naming the rule."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, `PROG: error: ... (see PROG --help)`, with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _number_type(convert: Callable[[str], float], accepted: Callable[[float], bool], rule: str) -> Callable[[str], float]:
    """An argparse type: `convert` the text (int or float), then keep it only when `accepted` (else say `rule`)."""
    kind = "a whole number" if convert is int else "a number"

    def parse(value: str) -> float:
        try:
            number = convert(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {kind}, got {value!r}") from None
        if not accepted(number):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {value}")
        return number

    return parse


def setting(section: str, key: str) -> Callable[[str], Any]:
    """An argparse type for a flag that sets `section.key`: it accepts exactly what the config accepts (the rule on
    the field in `replica.settings`, one for flag and config)."""
    from replica.settings import SECTIONS, rule_of

    rule = rule_of(section, key)
    kind = SECTIONS[section].__dataclass_fields__[key].type
    if kind in (int, "int", float, "float"):
        return _number_type(int if kind in (int, "int") else float, rule.accepts, rule.requirement)

    def parse(value: str) -> str:
        if not rule.accepts(value):
            raise argparse.ArgumentTypeError(f"{value!r} {rule.complaint} {rule.requirement}")
        return value

    return parse


positive_int = _number_type(int, lambda n: n >= 1, "at least 1")
positive_float = _number_type(float, lambda n: n > 0, "above 0")
non_negative_float = _number_type(float, lambda n: n >= 0, "at least 0")
port = _number_type(int, lambda n: 0 < n < 65536, "in 1-65535")
