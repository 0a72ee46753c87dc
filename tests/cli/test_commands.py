"""The ``refit`` command tree: names a newcomer can guess, each option spelled once."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from refit.cli import app


def _tree() -> typer.core.TyperGroup:
    return typer.main.get_command(app)


def test_no_command_spells_an_option_twice():
    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
            return
        opts = [o for p in command.params for o in (*p.opts, *p.secondary_opts)]
        yield " ".join(path), sorted({o for o in opts if opts.count(o) > 1})

    duplicates = {p: d for p, d in walk(_tree(), ["refit"]) if d}
    assert duplicates == {}
    serve = _tree().commands["serve-triggers"]
    opts = {p.name: p.opts for p in serve.params}
    assert opts["listen_host"] == ["--listen-host"] and opts["kfp_host"] == ["--kfp-host"]


def test_help_lists_the_servers_by_what_they_serve_and_hides_the_old_name():
    listed = {
        line.split()[1]
        for line in CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output.splitlines()
        if line.startswith("│ ") and len(line.split()) > 1
    }
    assert {"serve-triggers", "serve-model", "registry", "audit", "compile"} <= listed
    assert "serve" not in listed
    commands = _tree().commands
    assert commands["serve"].hidden and not commands["serve-triggers"].hidden


def test_the_deprecated_alias_takes_the_same_options():
    commands = _tree().commands

    def options(name: str) -> list[tuple[str, list[str], object]]:
        return [(p.name, p.opts, p.default) for p in commands[name].params]

    assert options("serve") == options("serve-triggers")
    assert commands["serve"].help == commands["serve-triggers"].help
