"""The settings table of docs/operations.md, rendered from `Settings` (as openapi.yaml is from the app).

Pure: a settings class in, Markdown out. One row per setting: its path, its environment variable, its default and
the `description=` of its pydantic Field. A nested group is walked; a nested model whose fields carry no
description (the reward weights) is one row with its fields' variables in braces. `splice` puts a generated block
between `<!-- BEGIN generated:NAME -->` and `<!-- END generated:NAME -->` markers of a page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from enum import Enum
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

ENV_PREFIX = "MEDIX_REWARD_"


def _nested_model(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, ensure_ascii=False, default=str)


def _default(value: Any) -> str:
    if value is None or (isinstance(value, list | dict) and not value):
        return "none"
    return f"`{_value(value)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def rows(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[tuple[str, str, str, str]]:
    """(setting path, environment variable, default, description) for every setting of `model`, in order."""
    for name, field in model.model_fields.items():
        here = (*path, name)
        nested = _nested_model(field)
        if nested is not None and any(child.description for child in nested.model_fields.values()):
            yield from rows(nested, here)
            continue
        env = ENV_PREFIX + "__".join(part.upper() for part in here)
        if nested is not None:
            names = ",".join(child.upper() for child in nested.model_fields)
            env = f"{env}__{{{names}}}"
            default = ", ".join(_default(child.default) for child in nested.model_fields.values())
        else:
            default = _default(field.get_default(call_default_factory=True))
        yield ".".join(here), env, default, field.description or ""


def render_settings_table(model: type[BaseModel]) -> str:
    """The Markdown table of every setting of `model` (a pydantic-settings class with the MEDIX_REWARD_ prefix)."""
    lines = ["| Setting | Environment variable | Default | Meaning |", "| --- | --- | --- | --- |"]
    for path, env, default, description in rows(model):
        lines.append(f"| `{path}` | `{env}` | {default} | {_cell(description)} |")
    return "\n".join(lines) + "\n"


def markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- BEGIN generated:{name} (do not edit: `medix-reward docs` writes it) -->",
        f"<!-- END generated:{name} -->",
    )


def splice(page: str, name: str, block: str) -> str:
    """`page` with the text between the markers named `name` replaced by `block`; the markers must be there."""
    begin, end = markers(name)
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.DOTALL)
    if not pattern.search(page):
        raise ValueError(f"no {begin!r} … {end!r} markers in the page")
    return pattern.sub(lambda _: f"{begin}\n{block.rstrip()}\n{end}", page, count=1)
