"""What every command prints to: the two consoles, the exit codes, and the error exit.

Shared by llmaudit.cli and its sub-command groups (pricing, replay) so they format alike.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.text import Text

# 0 ok, 1 a gate tripped (--fail-on, --fail-on-new, a failed self-test, a replay that measured nothing),
# 2 usage or input error, 130 interrupted (Ctrl-C).
EXIT_OK, EXIT_FINDINGS, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

# Not on a terminal (pipes, CI logs): a fixed width, so tables are neither cut nor different per machine.
out = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)
# Messages are never wrapped: a file path or a reject reason must stay on one line to be copied.
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_INPUT) -> typer.Exit:
    """Print an error and return the exit to raise. The message is plain text: it names files and
    quotes config sections ([llmaudit.params...]) and telemetry, none of which may be read as markup."""
    err.print(Text("error: ", style="bold red") + Text(message), highlight=False)
    return typer.Exit(code)
