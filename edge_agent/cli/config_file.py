"""`--config agent.toml`: a command's options from a TOML file (click's default_map), so flags given still win.

The file's top-level keys are the command's long option names without `--` (`checkpoint-dir = "state/checkpoints"`),
each of the TOML type of its option: a string for paths, choices and rates, an integer, a float (an integer will
do), or a boolean for a flag. Relative paths (a --profile given as a .toml path, a --data npz and a --model file
too) are relative to the file's folder. Precedence: command line, then the
file, then the board profile (where a command has one), then the built-in default.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from edge_agent.cli.errors import OperatorError
from edge_agent.deploy.profiles import names_a_file
from edge_agent.learning.models.source import file_factory

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
META_KEY = "edge_agent.config_file"  # ctx.meta: the file the defaults came from
TOML_TYPES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


class ConfigCommand(click.Command):
    """A command with `--config FILE`: a value the file gives that its option refuses is one line naming file and
    key (click would print its usage and blame the flag, which the operator never typed)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.BadParameter as error:
            if error.param is not None and error.param.name is not None and from_file(ctx, error.param.name):
                raise OperatorError(f"{option_label(ctx, error.param.name)}: {error.message}") from None
            raise


def config_option(command: F) -> F:
    """Decorate a ConfigCommand with `--config FILE`, read before every other option."""
    return click.option(
        "--config", type=click.Path(path_type=Path), is_eager=True, expose_value=False, callback=_load,
        help="Read options from a TOML file: keys are the long option names without '--' (checkpoint-dir = "
             "\"state/checkpoints\"), relative paths are relative to the file. Flags given on the command line "
             "win over the file, the file over the profile.")(command)


def read_config(path: Path, command: click.Command) -> dict[str, Any]:
    """The file as {parameter name: value} for click's default_map; OperatorError naming the file and key."""
    try:
        with path.open("rb") as file:
            table = tomllib.load(file)
    except FileNotFoundError:
        raise OperatorError(f"--config: {path} does not exist") from None
    except IsADirectoryError:
        raise OperatorError(f"--config: {path} is a folder, not a file") from None
    except OSError as error:
        raise OperatorError(f"--config: cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise OperatorError(f"{path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise OperatorError(f"{path} is not valid TOML: {error}") from None
    options = file_options(command)
    defaults: dict[str, Any] = {}
    for key, value in table.items():
        option = options.get(key)
        if option is None or option.name is None:
            close = difflib.get_close_matches(key, options, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (keys are the options of `{command.name}`)"
            raise OperatorError(f"{path}: unknown key {key!r:.60}{hint}")
        defaults[option.name] = _value(path, key, option, value)
    return defaults


def file_options(command: click.Command) -> dict[str, click.Option]:
    """The options a file may set, by long name without `--` (not `--config` itself, nor `--help`)."""
    return {opt[2:]: param for param in command.params if isinstance(param, click.Option) and not param.is_eager
            for opt in param.opts if opt.startswith("--")}


def from_file(ctx: click.Context, name: str) -> bool:
    """Whether the parameter's value came from the --config file."""
    return ctx.get_parameter_source(name) is ParameterSource.DEFAULT_MAP and META_KEY in ctx.meta


def option_label(ctx: click.Context, name: str) -> str:
    """How an error names an option: `--shard` on the command line, `agent.toml: shard` from the file."""
    param = next(p for p in ctx.command.params if p.name == name)
    flag = next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])
    return f"{ctx.meta[META_KEY]}: {flag[2:]}" if from_file(ctx, name) else flag


def options_label(ctx: click.Context, first: str, second: str) -> str:
    """Two options as an error names them: `--host and --listen`, `agent.toml: host and listen`."""
    if from_file(ctx, first) and from_file(ctx, second):
        return f"{ctx.meta[META_KEY]}: {option_label(ctx, first).rpartition(': ')[2]} and " \
               f"{option_label(ctx, second).rpartition(': ')[2]}"
    return f"{option_label(ctx, first)} and {option_label(ctx, second)}"


def _load(ctx: click.Context, _param: click.Parameter, path: Path | None) -> None:
    if path is None:
        return
    ctx.default_map = {**(ctx.default_map or {}), **read_config(path, ctx.command)}
    ctx.meta[META_KEY] = path


def _value(path: Path, key: str, option: click.Option, value: Any) -> Any:
    """The TOML value checked against its option's type; a relative path made relative to the file's folder."""
    expected = _toml_type(option)
    if isinstance(value, bool) != (expected is bool) or not isinstance(value, (int, float) if expected is float
                                                                       else expected):
        raise OperatorError(f"{path}: {key} must be {TOML_TYPES[expected]}, not {_toml_name(value)} "
                            f"({key} = {value!r:.40})")
    if (isinstance(option.type, click.Path) or (option.name == "profile" and names_a_file(value))
            or (option.name == "data_source" and value.endswith(".npz"))):
        value = str(path.parent / value) if value else value  # an absolute value stays as it is
    named = file_factory(value) if option.name == "model" else None
    if named is not None:  # path/to/file.py:factory, its file relative to this one
        value = f"{path.parent / named[0]}:{named[1]}"
    return float(value) if expected is float else value


def _toml_type(option: click.Option) -> type:
    if option.is_bool_flag or isinstance(option.type, click.types.BoolParamType):
        return bool
    if isinstance(option.type, click.types.IntParamType):
        return int
    if isinstance(option.type, click.types.FloatParamType):
        return float
    return str


def _toml_name(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", dict: "a table",
             list: "an array"}
    return next((name for kind, name in names.items() if type(value) is kind), "a date or time")


def checked(check: Callable[[str], T]) -> Callable[[click.Context, click.Parameter, str | None], T | None]:
    """A click callback running `check` on the option's value: its ValueError is one line naming the option, or the
    file and key the value came from."""
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> T | None:
        if value is None:
            return None
        try:
            return check(value)
        except ValueError as error:
            raise OperatorError(f"{option_label(ctx, str(param.name))}: {error}") from None
    return callback
