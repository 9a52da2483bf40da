"""`fillpoint research ...`: tokenization studies that write markdown reports with plots."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from .report import DEFAULT_OUT, write_report


def _add_config(parser: argparse.ArgumentParser, config: type) -> None:
    """One `--flag` per field of a study's config dataclass."""
    for f in dataclasses.fields(config):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, tuple):
            parser.add_argument(flag, type=int, nargs="+", default=list(default))
        else:
            parser.add_argument(flag, type=type(default), default=default)


def _config(config: type, args: argparse.Namespace) -> object:
    """A study config from the parsed flags."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return config(**values)


def build_parser() -> argparse.ArgumentParser:
    """The parser of `fillpoint research`."""
    from .bias import BiasConfig
    from .mixture_study import MixtureConfig
    from .quality import QualityConfig

    parser = argparse.ArgumentParser(prog="fillpoint research", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report folder")
    studies = parser.add_subparsers(dest="study", metavar="STUDY", required=True)
    quality = studies.add_parser("quality", help="vocabulary, compression, identifier splits")
    _add_config(quality, QualityConfig)
    mixture = studies.add_parser("mixture", help="infer a tokenizer's training data mixture")
    _add_config(mixture, MixtureConfig)
    bias = studies.add_parser("bias", help="naive vs exact next-byte distributions mid-token")
    _add_config(bias, BiasConfig)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one study and write its report."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.study == "quality":
        from .quality import QualityConfig, run

        body = run(_config(QualityConfig, args), args.out)
        write_report(args.out, "tokenizer_quality", "Tokenizer quality", argv, body)
    elif args.study == "mixture":
        from .mixture_study import MixtureConfig, run

        body = run(_config(MixtureConfig, args), args.out)
        write_report(args.out, "mixture_inference", "Data mixture inference", argv, body)
    elif args.study == "bias":
        from .bias import BiasConfig, run

        body = run(_config(BiasConfig, args), args.out)
        write_report(args.out, "tokenization_bias", "Tokenization bias mid-token", argv, body)
    return 0
