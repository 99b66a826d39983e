"""A click command whose ``--help`` shows its options under headings, in a fixed order."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import click
from click.formatting import term_len

OTHER = "Other options"


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
    """

    def __init__(self, *args: Any, groups: Mapping[str, Sequence[str]] | None = None,
                 notes: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.groups = {heading: list(names) for heading, names in (groups or {}).items()}
        self.notes = dict(notes or {})

    def grouped_records(self, ctx: click.Context) -> dict[str, list[tuple[str, str]]]:
        """Heading -> the (option, help) rows under it, as --help writes them; empty
        sections are left out."""
        records = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if isinstance(param, click.Option) and record is not None:  # None: hidden
                records[param.name] = record
        help_option = self.get_help_option(ctx)
        help_record = records.pop(help_option.name, None) if help_option else None
        sections: dict[str, list[tuple[str, str]]] = {}
        for heading, names in self.groups.items():
            sections[heading] = [records.pop(name) for name in names if name in records]
        sections[OTHER] = list(records.values())
        if help_record is not None:
            last = next((h for h in reversed(self.groups) if sections[h]), OTHER)
            sections[last].append(help_record)
        return {heading: rows for heading, rows in sections.items() if rows}

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections = self.grouped_records(ctx)
        # One column width for every section, as a single Options list would have.
        width = min(max((term_len(term) for rows in sections.values() for term, _ in rows),
                        default=0), 30)
        for heading, rows in sections.items():
            with formatter.section(heading):
                formatter.write_dl([(term.ljust(width) if term_len(term) < width else term, text)
                                    for term, text in rows])
                if heading in self.notes:
                    formatter.write_text(self.notes[heading])
