"""The layout docs/architecture.md describes stays true: every package is in the layer contract
and named on that page, every domain has its service, and no module passes 600 lines."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "malipo"
PAGE = (ROOT / "docs" / "architecture.md").read_text()
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
LAYERS = next(c for c in CONTRACTS if c["type"] == "layers")["layers"]
MAX_LINES = 600


def _top_level() -> list[str]:
    packages = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()]
    modules = [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    return sorted(packages + modules)


def _layered() -> set[str]:
    names: set[str] = set()
    for layer in LAYERS:
        for part in layer.replace("|", ":").split(":"):
            names.add(part.strip().removeprefix("malipo."))
    return names


def _domains() -> list[str]:
    return [part.strip().removeprefix("malipo.") for part in LAYERS[2].split(":")]


@pytest.mark.parametrize("name", _top_level())
def test_every_package_and_module_is_in_a_layer_of_the_contract(name: str) -> None:
    # A package missing from the layers would escape the upward-import check altogether.
    assert name in _layered(), f"malipo.{name} is in no layer of [tool.importlinter]"


@pytest.mark.parametrize("name", [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()])
def test_every_package_is_named_on_the_architecture_page(name: str) -> None:
    assert f"`{name}/`" in PAGE or f"`{name}`" in PAGE, (
        f"docs/architecture.md does not say what {name}/ holds"
    )


@pytest.mark.parametrize("domain", _domains())
def test_every_domain_has_its_service(domain: str) -> None:
    assert (PACKAGE / domain / "service.py").exists() or (PACKAGE / domain / "service").is_dir()


def test_no_module_passes_600_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these by sub-topic: {long}"
