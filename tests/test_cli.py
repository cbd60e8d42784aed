import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from modelyard.cli import app

runner = CliRunner()
HEAVY = ("pandas", "sklearn", "lightgbm", "sqlalchemy", "fastapi", "scipy", "onnxruntime")


def test_help_lists_the_commands_without_importing_heavy_libraries() -> None:
    probe = (
        "import sys\nfrom typer.testing import CliRunner\nfrom modelyard.cli import app\n"
        "out = CliRunner().invoke(app, ['--help']).output\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
        "print(out)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded, _, help_text = done.stdout.partition("\n")
    assert loaded == "[]"
    for command in ("init", "spec", "quickstart", "data", "runs", "models", "serve"):
        assert command in help_text


def test_init_then_check(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    made = runner.invoke(app, ["init", "churn", "--task", "binary", "--target", "churned"])
    assert made.exit_code == 0, made.output
    text = (tmp_path / "churn" / "modelyard.yaml").read_text()
    assert "target: churned" in text and "#" in text
    checked = runner.invoke(app, ["spec", "check", "churn/modelyard.yaml"])
    assert checked.exit_code == 0, checked.output
    assert "'churn'" in checked.output


def _main(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_bad_spec_exits_non_zero_naming_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "modelyard.yaml").write_text(
        "name: loans\ntask: binary\ntarget: default\ncosts:\n  false_negative: lots\n"
    )
    done = _main("spec", "check", cwd=tmp_path)
    assert done.returncode == 2
    assert "modelyard.yaml:5" in done.stderr and "costs.false_negative" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_spec_says_what_to_do(tmp_path: Path) -> None:
    done = _main("runs", "list", cwd=tmp_path)
    assert done.returncode == 2
    assert "modelyard init" in done.stderr and "Traceback" not in done.stderr
