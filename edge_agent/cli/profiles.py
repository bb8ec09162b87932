"""`edge-agent profiles list|show NAME`: the board profiles in firmware_profiles/ (or $EDGE_AGENT_PROFILES)."""

from __future__ import annotations

from dataclasses import fields

import click

from edge_agent.deploy.profiles import BoardProfile, find_profile, list_profiles

_COLUMNS = ("NAME", "BOARD", "ARCH", "CORES", "MEMORY", "BACKEND", "BUDGET", "UP", "DOWN")


def _row(profile: BoardProfile) -> tuple[str, ...]:
    board, runtime, link = profile.board, profile.runtime, profile.link
    return (profile.name, board.name, board.architecture, str(board.cores), f"{board.memory_mb} MB",
            runtime.backend, f"{runtime.memory_budget_mb} MB", link.uplink, link.downlink)


def format_table(profiles: list[BoardProfile]) -> str:
    """One line per profile under a header, columns padded to their widest cell."""
    rows = [_COLUMNS, *(_row(profile) for profile in profiles)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def format_profile(profile: BoardProfile) -> str:
    """Every field of a profile, one per line, grouped by TOML table."""
    lines = [f"{profile.name}  ({profile.path})"]
    for table in ("board", "runtime", "spark", "link"):
        section = getattr(profile, table)
        lines.append(f"[{table}]")
        for field in fields(section):
            value = getattr(section, field.name)
            shown = ", ".join(value) if isinstance(value, tuple) else str(value)
            lines.append(f"  {field.name:<20} {shown}")
    return "\n".join(lines)


@click.group()
def profiles() -> None:
    """Board profiles: what each board is, how it runs the kernels, what it sends and its usual link."""


@profiles.command("list")
def list_command() -> None:
    """List the known profiles as a table."""
    try:
        click.echo(format_table(list_profiles()))
    except ValueError as error:
        raise click.ClickException(str(error)) from error


@profiles.command("show")
@click.argument("name")
def show_command(name: str) -> None:
    """Print every field of profile NAME (a file stem such as rpi-4, or a path to a .toml)."""
    try:
        click.echo(format_profile(find_profile(name)))
    except ValueError as error:
        raise click.ClickException(str(error)) from error
