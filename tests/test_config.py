"""One home per constraint (issue 16.4): vidsme.config.validate rejects what the schema cannot, naming
the key; the schema's enums equal the package's registries and its defaults the functions' defaults."""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml

from vidsme import attacks, metrics, models, paper, qr, tiny
from vidsme.config import ConfigError, validate

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "schemas" / "config.schema.yaml").read_text())
PROPS = SCHEMA["properties"]


def _defaults(schema: dict[str, Any]) -> Any:
    """The config the schema's defaults make (what Snakemake's validate fills in)."""
    if schema.get("type") == "object" and "properties" in schema:
        return {k: _defaults(v) for k, v in schema["properties"].items()}
    return copy.deepcopy(schema.get("default"))


def _config(**over: dict[str, Any]) -> dict[str, Any]:
    cfg = _defaults(SCHEMA)
    for section, values in over.items():
        cfg[section].update(values) if isinstance(values, dict) else cfg.__setitem__(section, values)
    return cfg


def _problems(**over: Any) -> str:
    with pytest.raises(ConfigError) as e:
        validate(_config(**over), SCHEMA)
    return str(e.value)


def test_the_default_config_passes() -> None:
    cfg = _config()
    assert validate(cfg, SCHEMA) is cfg


@pytest.mark.parametrize(
    "over, message",
    [
        ({"frames": {"num_frames": 8.0}}, "frames.num_frames: 8.0 is not an integer (write 8)"),
        ({"dataset": {"shard_size": 16.0}}, "dataset.shard_size: 16.0 is not an integer"),
        ({"ablations": {"frames": [2, 4.0]}}, "ablations.frames[1]: 4.0 is not an integer"),
        ({"seed": 1.0}, "seed: 1.0 is not an integer"),
        ({"qr": {"beta2": float("nan")}}, "qr.beta2: nan is not a finite number"),
        ({"embedded": {"synth": {"n_eval": 200.0}}}, "embedded.synth.n_eval: 200.0 is not an integer"),
        ({"ablations": {"variants": {"short": {"epochs": 10.0}}}}, "ablations.variants.short.epochs: 10.0 is not an integer"),
        ({"scoring": {"main_k": 0.2}}, "scoring.main_k: 0.2 is not in scoring.k_grid"),
        ({"reduce": {"bogus_key": 1}}, "reduce.bogus_key: unknown key (known: q_min, q_max"),
        ({"reduce": {"n_nodes": 8.0}}, "reduce.n_nodes: 8.0 is not an integer (default 24)"),
        ({"reduce": {"q_max": 1.0, "q_min": 2.0}}, "reduce: ReduceSpec: need 0.01 <= q_min < q_max"),
        ({"qr": {"beta1": 2.5}}, "qr.beta1: 2.5 makes q range up to 3.5, outside the q range the dumps keep, [0.5, 3] "
                                 "(reduce.q_min, reduce.q_max); use qr.beta1 <= 2"),
        ({"qr": {"fixed_q": 3.5}}, "qr.fixed_q: 3.5 is outside the q range the dumps keep, [0.5, 3]"),
        ({"qr": {"fixed_q": 0.4, "mode": "fixed"}}, "qr.fixed_q: 0.4 is outside"),
        ({"reduce": {"q_min": 1.2}}, "reduce.q_min: 1.2 is above 1, the smallest adaptive q"),
    ],
)
def test_what_would_fail_late_is_named(over: dict[str, Any], message: str) -> None:
    assert message in _problems(**over)


def test_every_problem_is_listed_at_once() -> None:
    text = _problems(frames={"num_frames": 8.0}, scoring={"main_k": 0.2}, qr={"beta1": 2.5})
    assert "frames.num_frames" in text and "scoring.main_k" in text and "qr.beta1" in text


@pytest.mark.parametrize("over", [{"qr": {"beta1": 2.0}}, {"reduce": {"q_max": 3.5}, "qr": {"beta1": 2.5}},
                                  {"qr": {"mode": "fixed", "beta1": 9.0, "fixed_q": 2.0}}, {"scoring": {"main_k": 0.1 + 1e-12}}])
def test_edges_that_work_pass(over: dict[str, Any]) -> None:
    validate(_config(**over), SCHEMA)


def test_the_q_check_matches_what_the_dumps_refuse() -> None:
    """The range named at parse time is the one PassStats enforces when it scores."""
    import numpy as np

    from vidsme.passstats import PassStats
    from vidsme.reduce import ReduceSpec, reduce_logits

    import torch

    stats = PassStats.from_tensors(reduce_logits(torch.randn(3, 50, dtype=torch.float64), ReduceSpec()))
    assert np.isfinite(stats.sme(3.0, 1.1)).all()  # 1 + beta1 with beta1 = 2: accepted here and at parse time
    with pytest.raises(ValueError, match="outside the dump's range"):
        stats.sme(3.5, 1.1)  # beta1 = 2.5: what the parse-time check prevents


def _enum(*path: str) -> list[Any]:
    node: dict[str, Any] = PROPS
    for p in path[:-1]:
        node = node[p]["properties"]
    return [v for v in node[path[-1]]["enum"] if v is not None]


def test_schema_enums_equal_the_package_registries() -> None:
    assert _enum("model", "family") == list(tiny.FAMILIES)
    assert _enum("qr", "mode") == list(qr.MODES)
    assert _enum("dataset", "setting") == list(paper.SETTINGS)
    assert _enum("metrics", "nonfinite") == list(metrics.NONFINITE_POLICIES)
    assert _enum("model", "dtype") == [*models.DTYPES, "auto"]


def test_schema_defaults_equal_the_function_defaults() -> None:
    cfg = _config()
    map_qr = inspect.signature(qr.map_qr).parameters
    evaluate = inspect.signature(metrics.evaluate).parameters
    assert (cfg["qr"]["fixed_q"], cfg["qr"]["fixed_r"]) == (attacks.FIXED_Q, attacks.FIXED_R)
    assert (cfg["qr"]["beta1"], cfg["qr"]["beta2"], cfg["qr"]["mode"]) == (map_qr["beta1"].default, map_qr["beta2"].default,
                                                                           map_qr["mode"].default)
    assert cfg["metrics"]["nonfinite"] == evaluate["nonfinite"].default == metrics.NONFINITE_DEFAULT
    assert tuple(cfg["metrics"]["fprs"]) == evaluate["fprs"].default and cfg["metrics"]["n_boot"] == evaluate["n_boot"].default
    assert tuple(cfg["scoring"]["k_grid"]) == attacks.K_GRID
    assert "fixed_q" not in PROPS["scoring"]["properties"]  # the fixed (q, r) has one home: qr.fixed_q / qr.fixed_r
