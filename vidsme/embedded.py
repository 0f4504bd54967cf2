"""Settings of the embedded default: package defaults overridden by the config's ``embedded`` block."""

from __future__ import annotations

import importlib
from typing import Any

# section -> (module, attribute holding its defaults)
SECTIONS = {
    "synth": ("vidsme.synth", "DEFAULTS"),
    "train": ("vidsme.train", "DEFAULTS"),
    "tiny": ("vidsme.tiny", "DEFAULTS"),
}


def settings(embedded: dict[str, Any], section: str) -> dict[str, Any]:
    """Defaults of ``section`` updated with ``embedded[section]``; unknown keys are an error naming the key."""
    if section not in SECTIONS:
        raise KeyError(f"unknown embedded section {section!r} (known: {', '.join(SECTIONS)})")
    unknown_sections = set(embedded) - set(SECTIONS)
    if unknown_sections:
        raise KeyError(f"config key embedded.{sorted(unknown_sections)[0]}: unknown section (known: {', '.join(SECTIONS)})")
    module, attr = SECTIONS[section]
    defaults = dict(getattr(importlib.import_module(module), attr))
    given = embedded.get(section) or {}
    unknown = set(given) - set(defaults)
    if unknown:
        key = sorted(unknown)[0]
        raise KeyError(f"config key embedded.{section}.{key}: unknown (known: {', '.join(sorted(defaults))})")
    defaults.update(given)
    return defaults
