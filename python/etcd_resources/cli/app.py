"""The ``etcd-resources`` command: kubectl's verbs over resources kept in etcd.

Every command runs one ``asyncio.run`` on a fresh client (``EtcdSettings.from_env()`` and the
flags) through the package's public API. Exit codes: 0 done, 1 failed or refused (not found,
conflict, etcd unreachable, declined), 2 the command line is wrong; errors are one line on
stderr, with what to do.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from .. import EtcdResourcesError, __version__
from . import output
from .apply import apply
from .connection import connection_options, endpoints_of
from .count import count
from .delete import delete
from .describe import describe
from .edit import edit
from .errors import USAGE, explain, one_line
from .get import get
from .metadata import annotate, label
from .status import status

__all__ = ["cli", "main"]

PROG = "etcd-resources"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name=PROG)
@connection_options
def cli() -> None:
    """kubectl for Kubernetes-style resources kept in etcd (the Lab Resource Manager's
    LabWorkers and any other): get, describe, apply, edit, delete, count, label, annotate.

    Where etcd is comes from the service's own variables (ETCD_ENDPOINTS, ETCD_PREFIX,
    ETCD_USERNAME, ETCD_PASSWORD, ETCD_CA_CERT, ...) or the flags, before or after the verb.
    """


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: eval "$(etcd-resources completion bash)"."""
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    assert completer is not None
    output.write(completer(cli, {}, PROG, "_ETCD_RESOURCES_COMPLETE").source() + "\n")


for command in (get, describe, apply, edit, delete, count, label, annotate, status):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script. Never returns: exits with the command's code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:  # as kubectl: the help, and success
        output.write(cli.get_help(click.Context(cli, info_name=PROG)) + "\n")
        sys.exit(0)
    ctx_endpoints = ""
    try:
        with cli.make_context(PROG, args) as ctx:
            ctx_endpoints = endpoints_of(ctx)
            try:
                cli.invoke(ctx)
            finally:
                ctx_endpoints = endpoints_of(ctx)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        output.error(one_line(e.format_message()) + hint)
        sys.exit(USAGE)
    except click.exceptions.Abort:
        output.error("aborted, nothing done")
        sys.exit(1)
    except click.ClickException as e:
        if e.message:
            output.error(e.format_message())
        sys.exit(e.exit_code)
    except EtcdResourcesError as e:
        failure = explain(e, ctx_endpoints)
        output.error(failure.format_message())
        sys.exit(failure.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (| head): stop quietly. Python would complain again when it
        # flushes stdout at exit, so point stdout at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(0)
