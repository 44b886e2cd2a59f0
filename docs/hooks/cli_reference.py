"""mkdocs hook: generate the CLI reference from bortnas's argparse parser.

Registered under `hooks:` in mkdocs.yml. On the page `reference/cli.md` it replaces the marker
`<!-- cli-reference -->` with one section per subcommand (its help, its description and a table
of its flags: names, default, help), read from `bortnas.app.cli.build_parser()` at build time,
so the page always lists the flags the installed code has.
"""

from __future__ import annotations

import argparse
from typing import Any

from mkdocs.exceptions import PluginError

PAGE = "reference/cli.md"
MARKER = "<!-- cli-reference -->"


def _escape(text: str) -> str:
    """Make text safe inside a Markdown table cell; `code spans` of the help text stay code."""
    parts = " ".join(text.split()).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: treat it as text
        parts = [" ".join(text.split()).replace("`", "'")]
    out = []
    for k, part in enumerate(parts):
        if k % 2:
            out.append("`" + part.replace("|", "\\|") + "`")
            continue
        for char in ("\\", "|", "*", "_", "["):
            part = part.replace(char, "\\" + char)
        out.append(part.replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(out)


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    try:
        text = parser._get_formatter()._expand_help(action)  # expands %(default)s and friends
    except (KeyError, TypeError, ValueError):
        text = action.help
    return _escape(text)


def _names(action: argparse.Action) -> str:
    if not action.option_strings:  # a positional argument
        metavar = action.metavar or action.dest
        return f"`{metavar} ...`" if action.nargs == argparse.REMAINDER else f"`{metavar}`"
    value = ""
    if action.nargs != 0:
        if action.metavar is not None:
            metavar = action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
        elif action.choices is not None:
            metavar = "{" + ",".join(str(c) for c in action.choices) + "}"
        else:
            metavar = action.dest.upper()
        value = " " + metavar
    names = [f"`{name}`" for name in action.option_strings]
    names[-1] = names[-1][:-1] + value + "`"
    return ", ".join(names)


def _default(action: argparse.Action) -> str:
    if action.required:
        return "required"
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "off" if isinstance(action, argparse._StoreTrueAction) else "on"
    if isinstance(action, argparse._CountAction):
        return "0"
    default: Any = action.default
    if default is None or default == argparse.SUPPRESS:
        return "-"
    if default == "":
        return "`''`"
    return "`" + str(default).replace("|", "\\|") + "`"


def _table(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| flag | default | description |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        rows.append(f"| {_names(action)} | {_default(action)} | {_help(parser, action)} |")
    return rows


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def render(parser: argparse.ArgumentParser) -> str:
    """Markdown for the whole command line: global flags, then one section per subcommand."""
    out: list[str] = []
    if parser.description:
        out += [_escape(parser.description), ""]
    out += ["## Global flags", "", *_table(parser), ""]
    sub = _subparsers(parser)
    if sub is None:
        return "\n".join(out)
    helps = {choice.dest: choice.help or "" for choice in sub._choices_actions}
    for name, subparser in sub.choices.items():
        out += [f"## `{parser.prog} {name}`", ""]
        if helps.get(name):
            out += [f"*{_escape(helps[name])}*", ""]
        if subparser.description and subparser.description != helps.get(name):
            out += [_escape(subparser.description), ""]
        usage = " ".join(subparser.format_usage().split())
        usage = usage.removeprefix("usage: ")
        out += ["```text", usage, "```", ""]
        out += [*_table(subparser), ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"{PAGE} has lost its marker {MARKER!r}")
    try:
        from bortnas.app.cli import build_parser

        parser = build_parser()
    except Exception as e:  # the build must say why the reference cannot be made
        raise PluginError(f"cannot build the CLI reference from bortnas.app.cli.build_parser(): {e!r}") from e
    return markdown.replace(MARKER, render(parser))
