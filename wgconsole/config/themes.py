"""Console themes as YAML files: found, parsed and checked here; the UI turns them into Themes.

Themes live in `themes/` at the repository root (shipped as package data in
`wgconsole/themes/`) and in `$XDG_CONFIG_HOME/wgconsole/themes/`; a later directory's theme
replaces an earlier one of the same name. A file names its colours with the keys of
`textual.theme.Theme`; anything else is refused with the file and key at fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from wgconsole.config.paths import config_dir

COLOUR_KEYS: tuple[str, ...] = (
    "primary",
    "secondary",
    "accent",
    "warning",
    "error",
    "success",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
DEFAULT_THEME = "dark"
PACKAGE_DIR = Path(__file__).parent.parent / "themes"
REPO_DIR = Path(__file__).parent.parent.parent / "themes"


class ThemeError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ThemeSpec:
    name: str
    dark: bool
    colours: Mapping[str, str]  # keys from COLOUR_KEYS
    variables: Mapping[str, str] = field(default_factory=dict)
    path: str = ""


def theme_dirs() -> list[Path]:
    dirs = [PACKAGE_DIR, REPO_DIR, config_dir() / "themes"]
    return [d for d in dict.fromkeys(d.resolve() for d in dirs) if d.is_dir()]


def parse_theme(path: Path) -> ThemeSpec:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ThemeError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ThemeError(f"{path}: expected a mapping of theme keys")
    name = data.pop("name", path.stem)
    dark = data.pop("dark", True)
    variables = data.pop("variables", {}) or {}
    if not isinstance(name, str) or not name:
        raise ThemeError(f"{path}: name: expected a string")
    if not isinstance(dark, bool):
        raise ThemeError(f"{path}: dark: expected true or false")
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise ThemeError(f"{path}: variables: expected a mapping of strings")
    colours: dict[str, str] = {}
    for key, value in data.items():
        if key not in COLOUR_KEYS:
            raise ThemeError(f"{path}: {key}: unknown theme key (one of {', '.join(COLOUR_KEYS)})")
        if not isinstance(value, str):
            raise ThemeError(f"{path}: {key}: expected a colour string")
        colours[key] = value
    if "primary" not in colours:
        raise ThemeError(f"{path}: primary: required")
    return ThemeSpec(name, dark, colours, variables, str(path))


def load_themes(dirs: Iterable[Path] | None = None) -> dict[str, ThemeSpec]:
    """Every theme file in `dirs` (default: theme_dirs()), by name."""
    themes: dict[str, ThemeSpec] = {}
    for directory in theme_dirs() if dirs is None else dirs:
        for path in sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")):
            spec = parse_theme(path)
            themes[spec.name] = spec
    return themes
