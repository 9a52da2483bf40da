"""Assemble a release folder (int8 ONNX, tokenizer, config, manifest) and its model card."""

from __future__ import annotations

import json
from pathlib import Path

from .export import release


def _fmt(x: float | None, pct: bool = True) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def _earlier_runs(before: dict | None) -> list[dict]:
    """The runs these weights started from (`--init-from`), nearest first: a continued
    run's state keeps the state of the one it started from, and so on."""
    chain = []
    while before:
        chain.append(before)
        before = before.get("continued_from")
    return chain


def _config_file(depth: int) -> str:
    """Where docs/evaluation keeps the configuration of the run `depth` steps back."""
    return "train_config_before.json" if depth == 1 else f"train_config_before_{depth}.json"


def _continued(state: dict, chain: list[dict]) -> list[str]:
    """The card's lines on the runs these weights started from, nearest first (each line
    the run the line above started from), and the training of all of them together."""
    lines = []
    for depth, run in enumerate(chain, 1):
        which = "which had started from the weights of the run before it"
        if depth == 1:
            which = "starting from the weights of an earlier run"
        lines.append(
            f"- {which}: {run['step']} steps, "
            f"{run['tokens'] / 1e6:.1f}M tokens, {run['seconds'] / 60:.1f} minutes on "
            f"{run.get('hardware', 'unknown hardware')} "
            f"(configuration: `docs/evaluation/{_config_file(depth)}`)"
        )
    if chain:
        runs = [state, *chain]
        lines.append(
            f"- in all, {len(runs)} runs: {sum(r['step'] for r in runs)} steps, "
            f"{sum(r['tokens'] for r in runs) / 1e6:.1f}M tokens, "
            f"{sum(r['seconds'] for r in runs) / 60:.1f} minutes"
        )
    return lines


def model_card(run: Path, tokenizer: Path, evaluation: dict | None) -> tuple[str, dict]:
    """Markdown card and manifest extras from a training run and (optionally) its evaluation."""
    cfg = json.loads((run / "train_config.json").read_text())
    state = json.loads((run / "checkpoint" / "trainer_state.json").read_text())
    model_cfg = json.loads((run / "checkpoint" / "config.json").read_text())
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    val = [r["val_loss"] for r in rows if "val_loss" in r]
    data = Path(cfg["data"])
    splits = {}
    for split in ("train", "valid", "test"):
        info = data / f"{split}.json"
        if info.exists():
            splits[split] = json.loads(info.read_text())
    corpus_stats = data.parent / "corpus" / "stats.json"
    stats = json.loads(corpus_stats.read_text()) if corpus_stats.exists() else {}
    packages, skipped = stats.get("packages", {}), stats.get("skipped", {})
    hardware = state.get("hardware", "2 CPU cores")
    before = state.get("continued_from")  # the run these weights started from (--init-from)
    chain = _earlier_runs(before)
    type_weight = cfg.get("type_loss_weight", 0.1)
    extra = {
        "name": "fillpoint-pycoder",
        "trained_steps": state["step"],
        "trained_tokens": state["tokens"],
        "training_minutes": round(state["seconds"] / 60, 1),
        "trained_on": hardware,
        "final_val_loss": val[-1] if val else None,
        "continued_from": before,
        "data": splits,
        "evaluation": evaluation or {},
    }
    lines = [
        "# fillpoint-pycoder",
        "",
        "A PyCoder-style decoder (GPT-2-style transformer with a next-token head and an",
        "auxiliary next-token-type head, loss 0.9/0.1, fill-in-the-middle augmentation) that",
        "fillpoint's server uses for the completion list and for inline completion.",
        "Shipped as int8 ONNX with a key/value cache; the type head is not exported.",
        "",
        "## Model",
        f"- {model_cfg['n_layer']} layers, width {model_cfg['n_embd']}, "
        f"{model_cfg['n_head']} heads, context {model_cfg['block_size']} tokens, "
        f"vocabulary {model_cfg['vocab_size']}"
        + (f", dropout {model_cfg['dropout']} in training" if model_cfg.get("dropout") else ""),
        f"- trained {state['step']} steps, {state['tokens'] / 1e6:.1f}M tokens, "
        f"{state['seconds'] / 60:.1f} minutes on {hardware} (bf16 autocast), "
        f"{state['tokens'] / max(1.0, state['seconds']) / 1e3:.0f}k tokens/s",
        *_continued(state, chain),
        f"- final validation loss {val[-1]:.3f} nats "
        f"({1 - type_weight:g} token + {type_weight:g} type)"
        if val
        else "",
        "",
        "## Data",
        "Python standard library plus the pinned PyPI wheels of",
        "`training/data/corpus_manifest.txt`, split train/valid/test by package (never by file);",
        "duplicates removed: "
        f"{skipped.get('duplicate', 0)} exact or layout-only copies, "
        f"{skipped.get('near duplicate', 0)} near-duplicates (MinHash, Jaccard >= 0.8).",
    ]
    for split, info in splits.items():
        lines.append(
            f"- {split}: {info['files']} files, {info['chars'] / 1e6:.1f}M characters, "
            f"{info['tokens'] / 1e6:.1f}M tokens "
            f"({info['chars'] / max(1, info['tokens']):.2f} characters per token)"
        )
    if packages.get("test"):
        lines.append(f"- test packages: {', '.join(packages['test'])}")
    if evaluation:
        lines += ["", "## Evaluation (held-out test packages)", ""]
        lines.append(f"Command: `{evaluation.get('command', 'fillpoint train eval')}`")
        lines.append("")
        lines.append("| method | top-1 | top-5 | MRR@10 | n |")
        lines.append("|---|---|---|---|---|")
        for name, m in evaluation.get("identifier_starts", {}).items():
            lines.append(
                f"| {name} | {_fmt(m.get('top1'))} | {_fmt(m.get('top5'))} | "
                f"{_fmt(m.get('mrr10'), False)} | {m.get('n')} |"
            )
        line = evaluation.get("line")
        if line:
            lines.append("")
            parts = [f"beam of {evaluation['line_beam']}"] if "line_beam" in evaluation else []
            if mode := evaluation.get("line_mode"):
                parts.append(f"{mode} prompts")
            how = f" ({', '.join(parts)})" if parts else ""
            lines.append(
                f"Line completion{how}: exact match {_fmt(line['exact'])}, edit similarity "
                f"{line['edit_sim']:.1f} over {line['n']} cut points."
            )
            if greedy := evaluation.get("line_greedy"):
                lines[-1] += (
                    f" Greedy decoding: exact match {_fmt(greedy['exact'])}, edit similarity "
                    f"{greedy['edit_sim']:.1f}."
                )
            if alone := evaluation.get("line_decoder_only"):
                lines[-1] += (
                    f" Without the document's own lines: exact match {_fmt(alone['exact'])}, "
                    f"edit similarity {alone['edit_sim']:.1f}."
                )
    tacc = (evaluation or {}).get("token_accuracy")
    if tacc and "accuracy" in tacc:
        lines += [
            "",
            f"Token-level accuracy (CodeXGLUE rules): {_fmt(tacc['accuracy'])}, identifiers "
            f"{_fmt(tacc.get('identifier_accuracy'))}.",
        ]
        if exact := tacc.get("exact"):
            lines[-1] += (
                f" Counting comments and spelling out every string literal: "
                f"{_fmt(exact['accuracy'])}."
            )
    if evaluation:
        lines += ["", "All tables, with statement completion and infilling: docs/evaluation."]
    lines += [
        "",
        "## Training configuration",
        "The run's `train_config.json` is in `docs/evaluation/train_config.json`; the GPU runs",
        "come from `training/gpu_release.sh` (`fillpoint train model` with those options",
        "trains the same model anywhere).",
        "Its `init_from` names the checkpoint it started from; the configurations of the runs"
        " before it are named under Model above."
        if chain
        else None,
        "",
        "## Limits",
        f"Small ({model_cfg['n_layer']} layers) and trained for minutes on {hardware}: it",
        "knows common Python idioms and the names in the visible file, not large APIs.",
        "Suggestions are not checked for correctness.",
        "",
    ]
    return "\n".join(x for x in lines if x is not None) + "\n", extra


def make_release(
    run: Path, tokenizer: Path, out: Path, eval_json: Path | None = None, card_only: bool = False
) -> dict:
    """Export the run's checkpoint into `out` with a card; returns the manifest. With
    `card_only`, the release in `out` keeps its files and gets the card and the manifest's
    description of the run and its evaluation again (after a new evaluation of it)."""
    need = [run / "train_config.json", run / "metrics.jsonl", run / "checkpoint" / "config.json"]
    need += [tokenizer] + ([eval_json] if eval_json else [])
    if missing := [str(p) for p in need if not p.is_file()]:
        raise SystemExit(f"fillpoint train release: not found: {', '.join(missing)}")
    try:
        evaluation = json.loads(eval_json.read_text()) if eval_json else None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"fillpoint train release: {eval_json} is not JSON: {exc}") from None
    card, extra = model_card(run, tokenizer, evaluation)
    if card_only:
        manifest_path = out / "manifest.json"
        if not manifest_path.exists():
            raise SystemExit(f"{out} holds no release to write a card for (no manifest.json)")
        manifest = json.loads(manifest_path.read_text())
        manifest.update({k: v for k, v in extra.items() if k != "name"})
        manifest_path.write_text(json.dumps(manifest, indent=2))
        (out / "README.md").write_text(card)
        print(f"card and manifest of {out} written again; model files unchanged")
        return manifest
    manifest = release(run / "checkpoint", tokenizer, out, card, extra)
    print(
        f"released {out}: {manifest['parameters'] / 1e6:.2f}M parameters, "
        f"fp32 ONNX parity {manifest['fp32_parity_max_abs']:.2e}"
    )
    return manifest
