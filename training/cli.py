"""`fillpoint train ...`: corpus -> tokenizer -> encode -> model -> release -> eval."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "fillpoint" / "wheels"


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from .train import TrainConfig

    _add_dataclass_args(p, TrainConfig)


def _add_dataclass_args(p: argparse.ArgumentParser, config: type) -> None:
    """One --flag per dataclass field, typed from its annotation."""
    for f in dataclasses.fields(config):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(f.type), str)
            p.add_argument(flag, type=kind, default=f.default)


def cmd_corpus(args: argparse.Namespace) -> None:
    from . import corpus

    manifest = Path(args.manifest) if args.manifest else corpus.default_manifest()
    stats = corpus.build(Path(args.out), manifest, Path(args.cache), not args.no_stdlib)
    print(json.dumps({k: v for k, v in stats.to_json().items() if k != "packages"}, indent=2))


def cmd_tokenizer(args: argparse.Namespace) -> None:
    from . import corpus, tokenizer

    texts = tokenizer.sample_texts(Path(args.corpus), args.max_chars)
    tok = tokenizer.train_tokenizer(texts, args.vocab_size)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tok.save(args.out)
    test = [r["text"] for r in corpus.iter_split(Path(args.corpus), "test")]
    cpt = tokenizer.chars_per_token(tok, test)
    print(f"vocabulary {tok.get_vocab_size()}, test chars/token {cpt:.3f}")


def cmd_encode(args: argparse.Namespace) -> None:
    from .dataset import encode_split

    for split in args.splits:
        info = encode_split(
            Path(args.corpus), split, Path(args.tokenizer), Path(args.out), args.jobs
        )
        print(json.dumps(info))


def cmd_model(args: argparse.Namespace) -> None:
    from .train import TrainConfig, train

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    out = train(cfg)
    print(f"checkpoint: {out / 'checkpoint'}")


def cmd_release(args: argparse.Namespace) -> None:
    from .release import make_release

    make_release(
        Path(args.run),
        Path(args.tokenizer),
        Path(args.out),
        Path(args.eval) if args.eval else None,
        card_only=args.card_only,
    )


def cmd_eval(args: argparse.Namespace) -> None:
    from .evaluate import main as eval_main

    eval_main(args)


def cmd_codefill_data(args: argparse.Namespace) -> None:
    from .codefill_data import build

    infos = build(
        Path(args.corpus), Path(args.out), args.splits, args.vocab_size, args.max_chars,
        args.max_files, args.jobs,
    )  # fmt: skip
    for info in infos:
        print(json.dumps(info))


def cmd_codefill(args: argparse.Namespace) -> None:
    from .train_codefill import CodeFillTrainConfig, train

    names = {f.name for f in dataclasses.fields(CodeFillTrainConfig)}
    out = train(CodeFillTrainConfig(**{k: v for k, v in vars(args).items() if k in names}))
    print(f"checkpoint: {out / 'checkpoint'}")


def cmd_codefill_release(args: argparse.Namespace) -> None:
    from .export_codefill import release

    manifest = release(Path(args.checkpoint), Path(args.vocab), Path(args.out))
    print(json.dumps(manifest, indent=2))


def add_codefill_parsers(sub: argparse._SubParsersAction) -> None:
    """`codefill-data` and `codefill`: the CodeFill-style dual name/type model."""
    from .train_codefill import CodeFillTrainConfig

    d = sub.add_parser("codefill-data", help="name/type streams for the CodeFill model")
    d.add_argument("--corpus", default="data/corpus")
    d.add_argument("--out", default="data/codefill")
    d.add_argument("--splits", nargs="+", default=["train", "valid", "test"])
    d.add_argument("--vocab-size", type=int, default=16384)
    d.add_argument("--max-chars", type=int, default=0, help="per split; 0 = all")
    d.add_argument("--max-files", type=int, default=0, help="per split; 0 = all")
    d.add_argument("--jobs", type=int, default=2)
    d.set_defaults(func=cmd_codefill_data)

    m = sub.add_parser("codefill", help="train the CodeFill-style dual name/type model")
    _add_dataclass_args(m, CodeFillTrainConfig)
    m.set_defaults(func=cmd_codefill)

    r = sub.add_parser("codefill-release", help="export a CodeFill checkpoint to int8 ONNX")
    r.add_argument("--checkpoint", default="runs/codefill/checkpoint")
    r.add_argument("--vocab", default="data/codefill/vocab.json")
    r.add_argument("--out", default="runs/codefill/release")
    r.set_defaults(func=cmd_codefill_release)

    from .evaluate_codefill import add_arguments, main

    v = sub.add_parser("codefill-eval", help="evaluate a CodeFill release or checkpoint")
    add_arguments(v)
    v.set_defaults(func=main)


def build_parser() -> argparse.ArgumentParser:
    """The `fillpoint train` argument parser."""
    p = argparse.ArgumentParser(prog="fillpoint train", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("corpus", help="download the pinned wheels and build the split corpus")
    c.add_argument("--out", default="data/corpus")
    c.add_argument("--manifest", default=None, help="name==version list (default: bundled)")
    c.add_argument("--cache", default=str(DEFAULT_CACHE), help="where downloaded wheels are kept")
    c.add_argument("--no-stdlib", action="store_true")
    c.set_defaults(func=cmd_corpus)

    t = sub.add_parser("tokenizer", help="train the byte-level BPE tokenizer")
    t.add_argument("--corpus", default="data/corpus")
    t.add_argument("--out", default="runs/tokenizer.json")
    t.add_argument("--vocab-size", type=int, default=8192)
    t.add_argument("--max-chars", type=int, default=40_000_000)
    t.set_defaults(func=cmd_tokenizer)

    e = sub.add_parser("encode", help="tokenize the splits into id/type arrays")
    e.add_argument("--corpus", default="data/corpus")
    e.add_argument("--tokenizer", default="runs/tokenizer.json")
    e.add_argument("--out", default="data/tokens")
    e.add_argument("--splits", nargs="+", default=["train", "valid", "test"])
    e.add_argument("--jobs", type=int, default=2)
    e.set_defaults(func=cmd_encode)

    m = sub.add_parser("model", help="train the PyCoder-style decoder")
    _add_train_args(m)
    m.set_defaults(func=cmd_model)

    r = sub.add_parser("release", help="export to int8 ONNX and write a release folder")
    r.add_argument("--run", default="runs/pycoder", help="training output folder")
    r.add_argument("--tokenizer", default="runs/tokenizer.json")
    r.add_argument("--eval", default=None, help="eval results JSON for the model card")
    r.add_argument("--out", default="models/release")
    r.add_argument(
        "--card-only",
        action="store_true",
        help="rewrite the card and manifest of the release in --out (after a new --eval), "
        "keeping its model files",
    )
    r.set_defaults(func=cmd_release)

    v = sub.add_parser("eval", help="evaluate a release on the held-out packages")
    from .evaluate import add_arguments

    add_arguments(v)
    v.set_defaults(func=cmd_eval)
    add_codefill_parsers(sub)
    return p


# What each step reads: (argument, file inside it or None, where it comes from). Checked
# before the step starts, so a missing input is one clear line, not a traceback mid-way.
Input = tuple[str, str | None, str]
CORPUS: Input = ("corpus", "train.jsonl", "made by `fillpoint train corpus`")
TOKENIZER: Input = ("tokenizer", None, "made by `fillpoint train tokenizer`")
INPUTS: dict[str, list[Input]] = {
    "corpus": [("manifest", None, "a list of name==version lines; leave it out for the bundled")],
    "tokenizer": [CORPUS],
    "encode": [CORPUS, TOKENIZER],
    "model": [("data", "train.ids.npy", "made by `fillpoint train encode`"), TOKENIZER],
    "codefill-data": [CORPUS],
    "codefill": [("data", "vocab.json", "made by `fillpoint train codefill-data`")],
    "codefill-release": [
        ("checkpoint", "config.json", "made by `fillpoint train codefill`"),
        ("vocab", None, "made by `fillpoint train codefill-data`"),
    ],
    "codefill-eval": [
        ("model", "config.json", "made by `fillpoint train codefill` or `codefill-release`"),
        ("corpus", "test.jsonl", "made by `fillpoint train corpus`"),
    ],
}


def missing_inputs(args: argparse.Namespace) -> list[str]:
    """One line per input of the step that is not there, saying where it comes from."""
    out = []
    for name, inside, hint in INPUTS.get(args.command, []):
        if getattr(args, name) is None:
            continue  # an optional input left out
        path = Path(getattr(args, name))
        want = path / inside if inside else path
        if not want.is_file():
            out.append(f"--{name} {path}: {want} not found ({hint})")
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point for `fillpoint train`."""
    args = build_parser().parse_args(argv)
    if missing := missing_inputs(args):
        raise SystemExit(f"fillpoint train {args.command}:\n  " + "\n  ".join(missing))
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
