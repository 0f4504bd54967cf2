"""Checks of the workflow config that JSON-schema cannot express, run at parse time (`snakemake -n`).

The schema (`config/schemas/config.schema.yaml`) is the home of every key's type, range, enum and
default; `rules/common.smk` validates against it and then calls :func:`validate`, which rejects what
would otherwise fail only after the first jobs, naming the key:

* integer keys given as floats (JSON-schema accepts ``num_frames: 8.0`` as an integer) and
  non-finite numbers (``.inf``/``.nan`` pass ``minimum``), including the integer settings of the
  ``embedded`` block and of ``ablations.variants`` (typed by the package defaults);
* ``scoring.main_k`` not in ``scoring.k_grid`` (the main table would silently lose every
  K-dependent attack);
* ``reduce`` keys and values (`vidsme.reducespec.ReduceSpec`);
* (q, r) that the dumps cannot serve: every q an attack will ask for (1 to 1 + ``qr.beta1`` for
  the adaptive modes, ``qr.fixed_q``) must lie in the dumps' q range [``reduce.q_min``,
  ``reduce.q_max``].

The sample sheet's own checks (labels, answer-slice fields) are in `vidsme.samples.check_eval_rows`;
:func:`check_blind_rows` adds what the blind baseline (in every run) needs of the evaluated rows.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

__all__ = ["ConfigError", "validate", "check_blind_rows", "schema_problems", "scoring_problems", "reduce_spec", "q_range_problems"]


class ConfigError(ValueError):
    """A config that would fail later; the message names every offending key."""


def _types(schema: dict[str, Any]) -> set[str]:
    t = schema.get("type", [])
    return set(t) if isinstance(t, list) else {t}


def _number_problem(key: str, value: Any, types: set[str]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if "integer" in types and "number" not in types and isinstance(value, float):
        return f"{key}: {value!r} is not an integer (write {int(value)})" if math.isfinite(value) and value.is_integer() \
            else f"{key}: {value!r} is not an integer"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{key}: {value!r} is not a finite number"
    return None


def schema_problems(value: Any, schema: dict[str, Any], key: str = "") -> list[str]:
    """Integer-typed values given as floats and non-finite numbers, anywhere the schema types them."""
    out: list[str] = []
    p = _number_problem(key, value, _types(schema))
    if p:
        out.append(p)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k, extra if isinstance(extra, dict) else None)
            if sub is not None:
                out += schema_problems(v, sub, f"{key}.{k}" if key else str(k))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            out += schema_problems(v, schema["items"], f"{key}[{i}]")
    return out


def _typed_like_defaults(given: dict[str, Any], defaults: dict[str, Any], where: str) -> list[str]:
    """Integer package defaults must be given as integers; numbers must be finite."""
    out = []
    for k, v in given.items():
        d = defaults.get(k)
        if isinstance(d, int) and not isinstance(d, bool):
            p = _number_problem(f"{where}.{k}", v, {"integer"})
        else:
            p = _number_problem(f"{where}.{k}", v, {"number"})
        if p:
            out.append(p)
    return out


def embedded_problems(config: dict[str, Any]) -> list[str]:
    """Integer settings of the embedded block and of the ablation variants (training settings, used by
    the embedded kind only: a sheet-kind parse does not import the training code)."""
    from vidsme.embedded import SECTIONS

    out: list[str] = []
    embedded = config.get("embedded") or {}
    for section, defaults in SECTIONS.items():
        given = embedded.get(section)
        if isinstance(given, dict) and given:
            out += _typed_like_defaults(given, defaults(), f"embedded.{section}")
    variants = (config.get("ablations") or {}).get("variants") or {}
    if (config.get("dataset") or {}).get("kind", "embedded") == "embedded":
        for name, over in variants.items():
            if isinstance(over, dict):
                out += _typed_like_defaults(over, SECTIONS["train"](), f"ablations.variants.{name}")
    return out


def scoring_problems(config: dict[str, Any]) -> list[str]:
    """`scoring.main_k` must be one of `scoring.k_grid` (same tolerance as the tables)."""
    s = config["scoring"]
    grid = [float(k) for k in s["k_grid"]]
    if not np.isclose(np.asarray(grid), float(s["main_k"])).any():
        return [f"scoring.main_k: {s['main_k']!r} is not in scoring.k_grid {grid}; the main table shows K-dependent "
                f"attacks (Vid-SME included) at main_k, so add it to k_grid or pick one of its values"]
    return []


def reduce_spec(reduce_cfg: dict[str, Any]) -> Any:
    """The `ReduceSpec` of the config's `reduce` block; `ConfigError` naming the key otherwise."""
    from vidsme.reducespec import ReduceSpec  # torch-free: parse time stays light

    fields = {f.name: f for f in dataclasses.fields(ReduceSpec)}
    problems = []
    for k, v in reduce_cfg.items():
        if k not in fields:
            problems.append(f"reduce.{k}: unknown key (known: {', '.join(fields)})")
            continue
        d = fields[k].default
        kind, name = {bool: (bool, "boolean"), int: (int, "integer"), float: ((int, float), "number"), str: (str, "string")}[type(d)]
        if isinstance(v, bool) != (type(d) is bool) or not isinstance(v, kind):
            problems.append(f"reduce.{k}: {v!r} is not {'an' if name == 'integer' else 'a'} {name} (default {d!r})")
        elif isinstance(v, float) and not math.isfinite(v):
            problems.append(f"reduce.{k}: {v!r} is not a finite number")
    if problems:
        raise ConfigError("\n".join(problems))
    try:
        return ReduceSpec.from_dict(dict(reduce_cfg))
    except ValueError as e:
        raise ConfigError(f"reduce: {e}") from None


def q_range_problems(config: dict[str, Any], spec: Any) -> list[str]:
    """Every q an attack uses must lie in the dumps' q range (`PassStats` refuses the others)."""
    qr = config["qr"]
    if not all(math.isfinite(float(qr[k])) for k in ("beta1", "fixed_q")):
        return []  # named by schema_problems
    lo, hi = float(spec.q_min), float(spec.q_max)
    tol = 1e-12 * max(1.0, hi)  # as vidsme.passstats.PassStats
    allowed = f"[{lo:g}, {hi:g}] (reduce.q_min, reduce.q_max)"
    out = []
    if qr["mode"] in ("minmax", "rank"):
        top = 1.0 + float(qr["beta1"])
        if top > hi + tol:
            out.append(f"qr.beta1: {qr['beta1']!r} makes q range up to {top:g}, outside the q range the dumps keep, "
                       f"{allowed}; use qr.beta1 <= {hi - 1.0:g} or raise reduce.q_max")
        if lo > 1.0 + tol:
            out.append(f"reduce.q_min: {lo:g} is above 1, the smallest adaptive q (qr.mode {qr['mode']}); "
                       f"use reduce.q_min <= 1")
    fq = float(qr["fixed_q"])
    if not lo - tol <= fq <= hi + tol:
        out.append(f"qr.fixed_q: {qr['fixed_q']!r} is outside the q range the dumps keep, {allowed} "
                   f"(fixed_q is used by qr.mode fixed and by the vid_sme_fixed attack)")
    return out


def validate(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every check on a schema-validated (defaults filled) config; raise `ConfigError` listing the
    problems, one line each, else return the config unchanged."""
    problems = schema_problems(config, schema) if schema else []
    problems += embedded_problems(config)
    problems += scoring_problems(config)
    try:
        problems += q_range_problems(config, reduce_spec(config.get("reduce") or {}))
    except ConfigError as e:
        problems += str(e).splitlines()
    if problems:
        raise ConfigError("invalid config (nothing was run):\n  " + "\n  ".join(problems))
    return config


def check_blind_rows(rows: Any, where: str, blind_cfg: dict[str, Any] | None) -> None:
    """The blind baseline cross-fits on the evaluated rows (at least 2 folds x 2 videos, or groups, per
    class): its own rule, `vidsme.blind.n_folds`, applied when the workflow is read. Raises
    `vidsme.samples.SheetError` naming the sheet and the counts."""
    from vidsme.blind import BlindError, groups_of, n_folds
    from vidsme.blind import config as blind_config
    from vidsme.samples import SheetError

    c = blind_config(blind_cfg)
    try:
        n_folds(rows["label"].to_numpy(), groups_of(rows, list(rows["video_id"]), c["group_column"]), int(c["folds"]))
    except BlindError as e:
        raise SheetError(f"{where}: {e} (the blind baseline runs with every run; docs/blind.md)") from None
