"""Loading the shared conformance vectors named by an environment variable."""

from __future__ import annotations

import os
from typing import Any

import pytest
import yaml


def load_vectors(variable: str) -> list[dict[str, Any]]:
    """The ``vectors`` list of the YAML file ``$variable`` names; [] when it is unset."""
    path = os.environ.get(variable)
    if not path:
        return []
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    vectors: list[dict[str, Any]] = data["vectors"]
    return vectors


def needs(variable: str, what: str, file: str) -> pytest.MarkDecorator:
    """Skip, saying plainly what was not run, when ``$variable`` is unset."""
    return pytest.mark.skipif(
        not os.environ.get(variable),
        reason=f"{variable} is not set: the {what} conformance vectors were NOT run "
        f"(point it at conformance/{file})",
    )
