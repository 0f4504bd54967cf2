"""The ``vidsme`` command: help, version, every subcommand's help and errors, the table command,
and every console script that pyproject.toml installs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import yaml

import vidsme
from conftest_video import index_frames, write_clip
from vidsme import attacks, cli, commands

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, exe: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*(exe or [sys.executable, "-m", "vidsme"]), *args], capture_output=True, text=True, env=env, timeout=120)


def test_help_lists_every_command_with_its_summary(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: vidsme")
    for name, target in cli.COMMANDS.items():
        fn = cli.resolve(target)
        doc = (fn.__doc__ or sys.modules[fn.__module__].__doc__).strip().splitlines()[0]
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name + " "))
        assert len(doc) > 20 and line.split(None, 1)[1] == doc, name


def test_version_names_the_checkout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"vidsme {vidsme.__version__} from {ROOT / 'vidsme'}"


def test_no_or_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["frobnicate"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2
        assert "inspect" in capsys.readouterr().err  # the message lists the known commands


def test_every_command_resolves_and_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for name, target in cli.COMMANDS.items():
        assert callable(cli.resolve(target)), target
        with pytest.raises(SystemExit) as e:
            cli.main([name, "--help"])
        assert e.value.code == 0, name
        assert capsys.readouterr().out.startswith(f"usage: vidsme {name}"), name


def test_inspect_through_vidsme(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = write_clip(tmp_path / "c.mkv", index_frames(30))
    assert cli.main(["inspect", str(clip), "--frames", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["indices"] == [0, 9, 19, 29]
    assert cli.main(["inspect", str(tmp_path / "none.mp4")]) == 2
    assert capsys.readouterr().err.strip() == f"vidsme inspect: error: {tmp_path / 'none.mp4'}: file not found"


def test_paper_sheet_through_vidsme(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["paper-sheet", "nextqa", "--splits", str(tmp_path / "nowhere"), "--out", str(tmp_path / "s.tsv")]) == 2
    assert "dataset.splits_dir" in capsys.readouterr().err


def _metrics(path: Path) -> Path:
    rows = [  # attack, k, auc ... : two K-dependent attacks at two K and one K-free attack
        ("vid_sme", 0.1, 0.6), ("vid_sme", 1.0, 0.9), ("min_k_prob", 0.1, 0.7), ("perplexity", None, 0.55)]
    df = pd.DataFrame([{"attack": a, "k": k, "auc": auc, "auc_lo": auc - 0.1, "auc_hi": auc + 0.1, "acc": 0.5,
                        "tpr@0.05": 0.1, "tpr@0.01": 0.02, "tpr@0.001": 0.0, "n_members": 3, "n_nonmembers": 4} for a, k, auc in rows])
    df.to_csv(path, sep="\t", index=False)
    return path


def test_table_prints_the_main_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = _metrics(tmp_path / "metrics.tsv")
    assert cli.main(["table", str(m)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Members: 3, non-members: 4. Scores: higher = member. Values in %."
    assert out[2] == "| attack | K | AUC | AUC 95% CI | Acc | TPR@5%FPR | TPR@1%FPR |"
    assert out[4:] == ["| min_k_prob | 10% | 70.0 | [60.0, 80.0] | 50.0 | 10.0 | 2.0 |",
                       "| vid_sme | 10% | 60.0 | [50.0, 70.0] | 50.0 | 10.0 | 2.0 |",
                       "| perplexity |  | 55.0 | [45.0, 65.0] | 50.0 | 10.0 | 2.0 |"]
    assert cli.main(["table", str(m), "--k", "1", "--title", "At K = 100%"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("**At K = 100%.** Members: 3") and out[4].startswith("| vid_sme | 100% | 90.0 |")
    assert out[0].endswith("Not defined at K = 100% (not shown): min_k_prob.")
    (tmp_path / "s.tsv").write_text("video_id\tpath\tlabel\n" + "".join(f"v{i}\tv{i}.mp4\t{i % 2}\n" for i in range(8)))
    (tmp_path / "sk.tsv").write_text("video_id\tn_decoded\tstatus\treason\nv7\t\tskipped\tempty file (0 bytes)\n")
    assert cli.main(["table", str(m), "--sheet", str(tmp_path / "s.tsv"), "--skipped", str(tmp_path / "sk.tsv")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (f"7 of 8 videos scored, 1 skipped (see {tmp_path / 'sk.tsv'}). "
                                                       "Members: 3, non-members: 4. Scores: higher = member. Values in %.")
    assert cli.main(["table", str(m), "--sheet", str(tmp_path / "gone.tsv"), "--skipped", str(tmp_path / "sk.tsv")]) == 2
    assert "gone.tsv: file not found" in capsys.readouterr().err
    assert cli.main(["table", str(tmp_path / "none.tsv")]) == 2
    assert "none.tsv: file not found" in capsys.readouterr().err
    (tmp_path / "bad.tsv").write_text("a\tb\n1\t2\n")
    assert cli.main(["table", str(tmp_path / "bad.tsv")]) == 2
    assert "bad.tsv: not a metrics table" in capsys.readouterr().err


def test_table_ties_sort_by_name_and_blind_adds_its_row_and_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = _metrics(tmp_path / "metrics.tsv")
    df = pd.read_csv(m, sep="\t")
    df.loc[df.attack == "perplexity", "auc"] = 0.7  # ties min_k_prob at K = 10%
    df.iloc[::-1].to_csv(m, sep="\t", index=False)  # row order must not matter
    blind = df.iloc[[0]].assign(attack="blind", k=None, auc=0.6, auc_lo=0.55, auc_hi=0.65)
    blind.to_csv(tmp_path / "blind.tsv", sep="\t", index=False)
    assert cli.main(["table", str(m), "--blind", str(tmp_path / "blind.tsv")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "shift" in out[2].lower() and "55" in out[2]  # CI lower bound 55 > 52: the split is shifted
    assert [r.split(" | ")[0] for r in out[6:]] == ["| min_k_prob", "| perplexity", "| blind", "| vid_sme"]
    assert cli.main(["table", str(m), "--blind", str(tmp_path / "no_blind.tsv")]) == 2
    assert "no_blind.tsv: file not found" in capsys.readouterr().err


def test_score_errors_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "qr.tsv").write_text("video_id\tq\tr\n")
    (tmp_path / "s.tsv").write_text("video_id\tpath\tlabel\n")
    args = ["--qr", str(tmp_path / "qr.tsv"), "--sheet", str(tmp_path / "s.tsv"), "--out", str(tmp_path / "o.tsv")]
    assert cli.main(["score", str(tmp_path / "shard0000.safetensors"), *args]) == 2
    assert capsys.readouterr().err.strip() == f"vidsme score: error: {tmp_path / 'shard0000.safetensors'}: file not found"
    (tmp_path / "junk.safetensors").write_bytes(b"not a dump")
    assert cli.main(["score", str(tmp_path / "junk.safetensors"), *args]) == 2
    assert str(tmp_path / "junk.safetensors") in capsys.readouterr().err


def test_command_defaults_are_the_workflow_defaults() -> None:
    props = yaml.safe_load((ROOT / "config" / "schemas" / "config.schema.yaml").read_text())["properties"]
    scoring, metrics, qr = props["scoring"]["properties"], props["metrics"]["properties"], props["qr"]["properties"]
    assert commands.MAIN_K == scoring["main_k"]["default"]
    assert list(commands.FPRS) == metrics["fprs"]["default"]
    assert list(attacks.K_GRID) == scoring["k_grid"]["default"]
    assert (attacks.FIXED_Q, attacks.FIXED_R) == (qr["fixed_q"]["default"], qr["fixed_r"]["default"])  # their one home


def test_every_installed_console_script_runs() -> None:
    """Each [project.scripts] entry, run through its target as the installed script does (the real
    installed scripts run in tests/test_checkouts.py)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"vidsme-inspect": "vidsme.inspect:main", "vidsme": "vidsme.cli:main"}
    for name, target in scripts.items():
        module, func = target.split(":")
        code = f"import sys; from {module} import {func}; sys.argv[0] = {name!r}; sys.exit({func}())"
        out = _run("--version", exe=[sys.executable, "-c", code])
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"vidsme {vidsme.__version__} from {ROOT / 'vidsme'}", name


def test_python_m_vidsme() -> None:
    out = _run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"vidsme {vidsme.__version__} from {ROOT / 'vidsme'}"
