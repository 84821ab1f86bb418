"""Entry point: a subcommand goes to ``core.cli`` without importing Qt; none opens the app."""

from __future__ import annotations

import multiprocessing
import sys

from core.cli import SUBCOMMANDS


def main(argv: list[str] | None = None) -> int:
    """``fcn-gui [PATH...]`` opens the window; ``fcn-gui SUBCOMMAND ...`` runs headless."""
    multiprocessing.freeze_support()  # data-loader workers in the frozen app
    args = sys.argv[1:] if argv is None else list(argv)
    if args and (args[0] in SUBCOMMANDS or args[0] in ("-h", "--help", "--version")):
        from core.cli import main as cli_main

        return cli_main(args)
    from fcn_gui.desktop_check import desktop_problem

    problem = desktop_problem()  # before Qt, which would abort the process with a misleading message
    if problem is not None:
        print(f"fcn-gui: {problem[1]}", file=sys.stderr)
        return problem[0]
    from fcn_gui.app import run_app

    return run_app(args)


if __name__ == "__main__":
    sys.exit(main())
