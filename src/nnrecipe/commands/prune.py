"""`nnrecipe prune` (being written)."""

from __future__ import annotations

import argparse

HELP = "(being written)"
DESCRIPTION = HELP


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
