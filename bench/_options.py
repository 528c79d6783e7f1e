"""A bench script's command line: its docstring's first paragraph as the description,
and, where one argument list serves several scripts, the others' options let through."""

import argparse


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first paragraph (its usage line follows)."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0])


def known_args(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> argparse.Namespace:
    """``parser``'s options in ``argv``; any other option is ignored, so that one
    argument list can serve several bench scripts."""
    args, _ = parser.parse_known_args(argv)
    return args
