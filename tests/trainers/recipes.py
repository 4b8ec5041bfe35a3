"""The trainer command lines of examples/, as the tier runs them: docs/trainers.md's recipes are these files."""

from __future__ import annotations

import importlib
import os
import shlex
import string
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def command_args(script: str, command: str, **variables: str) -> list[str]:
    """The arguments after `command` (e.g. `python3 -m verl.trainer.main_ppo`) in examples/<script>, with its
    $VARIABLES set and the pass-through "$@" dropped: what the trainer's own parser receives."""
    text = (EXAMPLES / script).read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith(f"{command} "))
    words = shlex.split(line.removeprefix(f"{command} "))
    return [string.Template(word).substitute(variables) for word in words if word != "$@"]


def trainer(name: str):
    """The trainer's package: skipped where it is not installed, except in the venv `make test-trainers`
    built for it (MEDIX_TRAINER_TIER names it), where failing to import it is an error, not a skip."""
    if os.environ.get("MEDIX_TRAINER_TIER") == name:
        return importlib.import_module(name)
    return pytest.importorskip(name, reason=f"the {name} tier runs in its own venv: make test-trainers")
