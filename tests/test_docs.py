"""The docs keep their promises: README stays a door (≤ 200 lines, figures only from docs/benchmarks.md), every
relative link of README and docs/ resolves (anchors to headings), and the generated tables (settings, benchmarks)
and the hand-written limits table agree with the code and the JSON they come from."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import pytest
from medix_reward_tools import bench_doc, gendocs
from pydantic import BaseModel, Field

from medix_reward.settings import Settings
from medix_reward.settings_doc import render_settings_table, rows, splice

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def _prose(text: str) -> str:
    """The page without its fenced code blocks, whose brackets are code, not links."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in _prose(page.read_text(encoding="utf-8")).splitlines():
        if match := re.match(r"#{1,6}\s+(.*)", line):
            slug = _slug(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links(page: Path) -> list[str]:
    return [target for target in LINK.findall(_prose(page.read_text(encoding="utf-8")))
            if not re.match(r"[a-z]+:", target)]  # fmt: skip


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path):
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert not broken, f"{page.name}: {broken}"


def test_the_link_checker_sees_links_and_headings():
    assert _slug("The `hardened` preset: a reward a policy cannot talk into a YES") == (
        "the-hardened-preset-a-reward-a-policy-cannot-talk-into-a-yes"
    )
    assert "docs/presets.md#differences-from-the-medix-r1-reference" in _links(README)
    assert "differences-from-the-medix-r1-reference" in _anchors(ROOT / "docs" / "presets.md")


def test_readme_is_at_most_200_lines():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200


def _section(text: str, heading: str) -> str:
    return text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_quotes_only_figures_of_the_benchmarks_page():
    readme = _prose(README.read_text(encoding="utf-8"))
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    performance = _section(readme, "Performance")
    figures = re.findall(r"\d[\d,.–]*\d|\d", re.sub(r"\]\([^)]*\)", "]", performance))
    assert figures, "the Performance section quotes the headline figures"
    missing = [figure for figure in figures if figure not in benchmarks]
    assert not missing, f"README's Performance quotes figures that docs/benchmarks.md does not: {missing}"
    elsewhere = readme.replace(performance, "")
    assert not re.findall(r"\d\s*[×%]", elsewhere), "measured ratios belong in the Performance section"


def test_generated_docs_are_current():
    assert gendocs.stale(ROOT) == [], "run `medix-reward docs` (make docs)"


def test_the_limits_table_states_the_settings_defaults():
    defaults = {env: default for _, env, default, _ in rows(Settings)}
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    table = _section(text, "Limits")
    checked = 0
    for line in table.splitlines():
        if not line.startswith("| `MEDIX_REWARD_"):
            continue
        names, stated = line.split(" | ")[:2]
        variables = re.findall(r"`([^`]+)`", names)
        group = variables[0].rsplit("__", 1)[0]
        full = [v if v.startswith("MEDIX_REWARD_") else group + v.removeprefix("…") for v in variables]
        values = [v.strip() for v in stated.split(",")]
        assert len(full) == len(values), line
        for env, value in zip(full, values, strict=True):
            assert defaults[env] == value, f"{env}: the table says {value}, Settings {defaults[env]}"
            checked += 1
    assert checked >= 12


class _Inner(BaseModel):
    size: int = Field(default=3, description="How many | at most.")


class _Plain(BaseModel):
    a: float = 0.5
    b: float = 1.0


class _Outer(BaseModel):
    inner: _Inner = _Inner()
    plain: _Plain = Field(default=_Plain(), description="Two weights.")
    names: list[str] = Field(default=[], description="None by default.")
    url: str | None = Field(default=None, description="Optional.")


def test_the_settings_table_walks_groups_and_folds_plain_models():
    assert list(rows(_Outer)) == [
        ("inner.size", "MEDIX_REWARD_INNER__SIZE", "`3`", "How many | at most."),
        ("plain", "MEDIX_REWARD_PLAIN__{A,B}", "`0.5`, `1`", "Two weights."),
        ("names", "MEDIX_REWARD_NAMES", "none", "None by default."),
        ("url", "MEDIX_REWARD_URL", "none", "Optional."),
    ]
    assert "How many \\| at most." in render_settings_table(_Outer)  # a pipe cannot break the table


def test_every_setting_has_a_description():
    assert [path for path, _, _, description in rows(Settings) if not description] == []


def test_splice_replaces_only_between_its_markers():
    page = (
        "a\n<!-- BEGIN generated:x (do not edit: `medix-reward docs` writes it) -->\nold\n<!-- END generated:x -->\nb"
    )
    assert splice(page, "x", "new\n") == page.replace("old", "new")
    with pytest.raises(ValueError, match="markers"):
        splice("no markers", "x", "new")


def test_a_drifted_page_is_found_and_rewritten(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("operations.md", "benchmarks.md", *gendocs.RUNS.values()):
        (docs / name).write_text((ROOT / "docs" / name).read_text(encoding="utf-8"), encoding="utf-8")
    page = docs / "operations.md"
    page.write_text(
        page.read_text(encoding="utf-8").replace("`MEDIX_REWARD_PORT` | `8080`", "`MEDIX_REWARD_PORT` | `1`")
    )
    assert gendocs.stale(tmp_path) == [page]
    assert gendocs.main(tmp_path, check=True) == 1
    assert gendocs.main(tmp_path, check=False) == 0
    assert gendocs.stale(tmp_path) == []


def _fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.DOTALL | re.MULTILINE)


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _unknown_keys(value: object, model: type[BaseModel], path: str = "") -> list[str]:
    """Keys of a JSON example that `model` does not declare (`…` marks what the example leaves out)."""
    if isinstance(value, list):
        return [key for element in value for key in _unknown_keys(element, model, path)]
    if not isinstance(value, dict):
        return []
    unknown = []
    for key, child in value.items():
        if key == "…":
            continue
        field = model.model_fields.get(key)
        if field is None:
            unknown.append(f"{path}{key}")
            continue
        for nested in _models_in(field.annotation)[:1]:
            unknown += _unknown_keys(child, nested, f"{path}{key}.")
    return unknown


def test_the_readme_request_is_valid_and_its_response_names_real_fields():
    from medix_reward_client.schema import RewardRequest, RewardResponse

    readme = README.read_text(encoding="utf-8")
    [curl] = [block for block in _fenced_blocks(readme, "bash") if "/reward" in block]
    request = RewardRequest.model_validate_json(curl.split("-d '", 1)[1].rsplit("'", 1)[0])
    assert [item.id for item in request.items] == ["p0-s0", "p0-s1", "p0-s2"]
    [response] = [json.loads(block) for block in _fenced_blocks(readme, "json") if '"results"' in block]
    assert _unknown_keys(response, RewardResponse) == []
    assert _unknown_keys({"results": [{"scores": {"fluency": 1}}]}, RewardResponse) == ["results.scores.fluency"]


def test_the_targets_table_says_met_only_when_a_target_is_met():
    results = json.loads((ROOT / "docs" / "benchmarks.json").read_text(encoding="utf-8"))
    table = bench_doc.targets_table([("run", results)])
    assert f"| service ≥ 30× the serial baseline | **NOT met**: {results['speedup']:.1f}×" in table
    faster = {**results, "speedup": 31.0}
    assert "| service ≥ 30× the serial baseline | met: 31.0×" in bench_doc.targets_table([("run", faster)])


def test_the_layout_page_names_every_module():
    layout = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    modules = [
        path.relative_to(package)
        for package in (ROOT / "service" / "medix_reward", ROOT / "client" / "medix_reward_client")
        for path in package.rglob("*.py")
        if path.name != "__init__.py"
    ]

    def named(module: Path) -> bool:
        return bool(re.search(rf"[`/]{re.escape(module.name)}`", layout))

    unnamed = [str(module) for module in modules if not named(module)]
    assert len(modules) > 40
    assert not unnamed, f"docs/layout.md does not say where these live: {unnamed}"
