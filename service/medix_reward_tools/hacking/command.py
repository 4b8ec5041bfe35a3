"""`medix-reward experiment hacking`: the runs (in the trainer venv), then the figures from their logs;
`--report-only`: the figures alone (needs matplotlib, not torch)."""

from __future__ import annotations

import argparse

from medix_reward_tools.hacking import experiment, report


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="medix-reward experiment hacking", description=__doc__)
    experiment.add_arguments(parser)
    parser.add_argument("--report-only", action="store_true", help="draw the plot and the tables from the logs")
    parser.add_argument("--no-report", action="store_true", help="the runs only (no matplotlib needed)")
    parser.add_argument("--plot", default=None, help="the PNG; default <out>/hacking.png")
    parser.add_argument("--markdown", default=None, help="the tables; default <out>/results.md")
    args = parser.parse_args(argv)
    if not args.report_only:
        experiment.run(args)
    if not args.no_report:
        report.render(args.out, args.plot, args.markdown)
