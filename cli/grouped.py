"""A click command whose ``--help`` shows its options under headings, in a fixed order, and
optionally only the common ones, the rest behind ``--help-all``."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import click
from click.formatting import term_len

OTHER = "Other options"
HELP_ALL = "--help-all"


class GroupedCommand(click.Command):
    """``click.Command`` whose help writes one section per option group.

    Use it as ``@click.command("extract", cls=GroupedCommand, groups={...}, notes={...})``.

    Args:
        groups: heading -> names of the parameters (``param.name``, the Python argument: "out_dir"
            for ``--out``) shown under it, in that order; the headings appear in the order given.
            An option of no group goes under "Other options" (tests keep that section empty);
            ``--help`` goes last, in the last group. Hidden options are not shown.
        notes: heading -> a line written at the end of that section (for instance where the
            hidden options are listed).
        common: when given, the names that ``--help`` shows (under their headings); the command
            gets a ``--help-all`` option that shows every option, and ``--help`` ends with a
            line counting the options it leaves to ``--help-all``. A long help (train's 50
            options) then fits a screen and still lists everything on request.
    """

    def __init__(self, *args: Any, groups: Mapping[str, Sequence[str]] | None = None,
                 notes: Mapping[str, str] | None = None, common: Sequence[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.groups = {heading: list(names) for heading, names in (groups or {}).items()}
        self.notes = dict(notes or {})
        self.common = None if common is None else set(common)
        if self.common is not None:
            self.params.append(click.Option(
                [HELP_ALL], is_flag=True, expose_value=False, is_eager=True,
                callback=_print_all_help,
                help="Show every option, not only the common ones, and exit."))

    def grouped_records(self, ctx: click.Context, everything: bool = True
                        ) -> dict[str, list[tuple[str, str]]]:
        """Heading -> the (option, help) rows under it, as --help writes them; empty
        sections are left out. ``everything=False``: only the common options (and the help
        options), as plain ``--help`` shows them when ``common`` is given."""
        records = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if isinstance(param, click.Option) and record is not None:  # None: hidden
                records[param.name] = record
        help_option = self.get_help_option(ctx)
        help_records = [records.pop(name) for name in (help_option and help_option.name,
                                                       "help_all") if name in records]
        sections: dict[str, list[tuple[str, str]]] = {}
        for heading, names in self.groups.items():
            sections[heading] = [records.pop(name) for name in names if name in records
                                 and (everything or self._is_common(name))]
        sections[OTHER] = [record for name, record in records.items()
                           if everything or self._is_common(name)]
        if help_records:
            last = next((h for h in reversed(self.groups) if sections[h]), OTHER)
            sections[last].extend(help_records)
        return {heading: rows for heading, rows in sections.items() if rows}

    def _is_common(self, name: str) -> bool:
        return self.common is None or name in self.common

    def left_to_help_all(self, ctx: click.Context) -> dict[str, int]:
        """Heading -> how many of its options plain ``--help`` leaves out."""
        every = self.grouped_records(ctx)
        shown = self.grouped_records(ctx, everything=False)
        return {heading: len(rows) - len(shown.get(heading, ())) for heading, rows
                in every.items() if len(rows) > len(shown.get(heading, ()))}

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        everything = self.common is None or ctx.meta.get(HELP_ALL, False)
        sections = self.grouped_records(ctx, everything)
        # One column width for every section, as a single Options list would have.
        width = min(max((term_len(term) for rows in sections.values() for term, _ in rows),
                        default=0), 30)
        for heading, rows in sections.items():
            with formatter.section(heading):
                formatter.write_dl([(term.ljust(width) if term_len(term) < width else term, text)
                                    for term, text in rows])
                if heading in self.notes:
                    formatter.write_text(self.notes[heading])
        if not everything:
            left = self.left_to_help_all(ctx)
            formatter.write_paragraph()
            formatter.write_text(f"{sum(left.values())} more options under these headings "
                                 f"and {', '.join(h for h in left if h not in sections)}: "
                                 f"{ctx.command_path} {HELP_ALL}")


def _print_all_help(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``--help-all``: the help with every option, then exit (as --help does)."""
    if not value or ctx.resilient_parsing:
        return
    ctx.meta[HELP_ALL] = True
    click.echo(ctx.get_help(), color=ctx.color)
    ctx.exit()
