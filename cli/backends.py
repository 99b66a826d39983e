"""``flowkit backends``: the flow methods, and the options of each."""

from __future__ import annotations

import click

from flowkit.cli.options import backend_options
from flowkit.errors import ConfigError
from flowkit.flow import backend_info, list_backends

EXAMPLES = """\b
Examples:
  flowkit backends            # one line per method
  flowkit backends tvl1       # --tvl1-tau, --tvl1-nscales, ... with OpenCV's defaults
"""


@click.command("backends", epilog=EXAMPLES)
@click.argument("name", required=False, metavar="[NAME]")
def backends_command(name: str | None) -> None:
    """List the flow methods of extract and flow, or the options of method NAME.

    The options of each method (--tvl1-tau, --raft-weights, ...) are accepted by flowkit
    extract and flowkit flow, which do not show them in their --help.
    """
    ctx = click.get_current_context()
    if name is None:
        infos = [backend_info(backend) for backend in list_backends()]
        rows = [("METHOD", "DEVICES", "DESCRIPTION")]
        rows += [(info.name, info.devices, f"{info.title}; {info.summary}") for info in infos]
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        for row in rows:
            click.echo(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
        click.echo("\nThe options of one: flowkit backends NAME.")
        return
    if name not in list_backends():
        raise ConfigError(f"unknown flow method {name!r}; choose one of: "
                          f"{', '.join(list_backends())}")
    info = backend_info(name)
    formatter = ctx.make_formatter()
    formatter.write_text(f"{name}: {info.title}; {info.summary}. Devices: {info.devices}.")
    with formatter.section("Options of flowkit extract and flowkit flow with this method"):
        formatter.write_dl([option.get_help_record(ctx) for option in backend_options(name)])
    click.echo(formatter.getvalue(), nl=False)
