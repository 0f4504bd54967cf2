"""Settings of the embedded default: package defaults overridden by the config's ``embedded`` block."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any


def _synth() -> dict[str, Any]:
    from vidsme.synth import DEFAULTS

    return DEFAULTS


def _train() -> dict[str, Any]:
    from vidsme.train import DEFAULTS

    return DEFAULTS


def _tiny() -> dict[str, Any]:
    from vidsme.tiny import TinySizes
    from vidsme.train import TINY_SIZES

    return {**asdict(TinySizes()), **TINY_SIZES}


SECTIONS: dict[str, Callable[[], dict[str, Any]]] = {"synth": _synth, "train": _train, "tiny": _tiny}


def settings(embedded: dict[str, Any], section: str) -> dict[str, Any]:
    """Defaults of ``section`` updated with ``embedded[section]``; unknown keys are an error naming the key."""
    if section not in SECTIONS:
        raise KeyError(f"unknown embedded section {section!r} (known: {', '.join(SECTIONS)})")
    unknown_sections = set(embedded) - set(SECTIONS)
    if unknown_sections:
        raise KeyError(f"config key embedded.{sorted(unknown_sections)[0]}: unknown section (known: {', '.join(SECTIONS)})")
    defaults = dict(SECTIONS[section]())
    given = embedded.get(section) or {}
    unknown = set(given) - set(defaults)
    if unknown:
        key = sorted(unknown)[0]
        raise KeyError(f"config key embedded.{section}.{key}: unknown (known: {', '.join(sorted(defaults))})")
    if "seed" in given:  # the pipeline passes the experiment's seed; a second one here would be ignored
        raise KeyError(f"config key embedded.{section}.seed: the seed is the top-level `seed` "
                       "(a target variant may set its own `seed` for a replicate)")
    defaults.update(given)
    return defaults
