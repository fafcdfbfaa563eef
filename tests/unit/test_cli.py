import subprocess
import sys

from biospike.cli import SUBCOMMANDS, main


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


def test_unknown_subcommand_exits_2(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown subcommand 'frobnicate'" in capsys.readouterr().err


def test_every_subcommand_resolves_to_a_function():
    import importlib

    for name, (target, _) in SUBCOMMANDS.items():
        module_name, func = target.split(":")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, func)), name


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "biospike.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("biospike ")
