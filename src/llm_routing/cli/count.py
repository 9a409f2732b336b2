"""``llm-routing count``: the tokens of a file for a model, counted as the context guard does."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from llm_routing.cli._usage import UsageError

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Register ``count`` on the top parser's subparsers."""
    count = sub.add_parser(
        "count",
        help="count the tokens of a file (or stdin) for a model, offline",
        description=(
            "Count tokens the way the context guard does: exact for OpenAI encodings, a "
            "calibrated upper-biased estimate for other providers. Nothing is downloaded."
        ),
    )
    count.add_argument("model", help="a model name, e.g. openai:gpt-4o-mini or claude-haiku-4-5")
    count.add_argument(
        "file", nargs="?", default="-", help="the text file to count (default: stdin)"
    )
    count.add_argument(
        "--as-message",
        action="store_true",
        help="count the text as one user message (adds the chat format's overhead)",
    )
    count.set_defaults(handler=_cmd_count)


def _cmd_count(args: argparse.Namespace, out: TextIO) -> int:
    from llm_routing.catalog import default_catalog
    from llm_routing.errors import UnknownModelError
    from llm_routing.tokens import count_tokens

    try:
        spec = default_catalog().get(args.model)
    except (UnknownModelError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file!r}: {exc.strerror}") from None
    payload: Any = [("user", text)] if args.as_message else text
    tokens = count_tokens(payload, spec)
    exact = not spec.tokenizer.startswith("estimate:")
    window = spec.context_window
    out.write(
        f"{tokens:,} tokens for {spec.key} ({'exact, ' if exact else 'estimate, '}"
        f"{spec.tokenizer}); context window {window:,} ({tokens / window:.1%} used)\n"
    )
    return 0
