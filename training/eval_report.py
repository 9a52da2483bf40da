"""The evaluation results as markdown tables and plots."""

from __future__ import annotations

from pathlib import Path

STATEMENT_NOTE = (
    "ROUGE-L is the LCS F1 over lexical tokens (Python's `tokenize`; string literals count "
    "as one `<str>` token, as in CodeXGLUE). METEOR aligns exact matches only (no stems or "
    "synonyms: WordNet is not available offline), with Fmean α = 0.9 and fragmentation "
    "penalty γ = 0.5, β = 3 (Lavie & Agarwal 2007). Each row n scores the first n predicted "
    "tokens on the samples with at least n tokens left in the statement; methods stop at the "
    "end of the statement. fillpoint: greedy decoding of the healed prompt, left context only."
)
INFILL_NOTE = (
    "The cursor is at a random character inside a code line (often inside a word); the span "
    "from it to the line's end, or to a point before a non-word character, is missing; the "
    "rest of the line and the file below it are the suffix (fill-in-the-middle). Scored: "
    "the engine's ghost text against the span, whitespace-trimmed. Rows marked greedy decode "
    "the line greedily (lineBeam 1) instead of with the ghost text's beam."
)

TOKEN_ACCURACY_RULES = (
    "Lexical tokens of the held-out files as CodeXGLUE scores them: comments and layout "
    "(newline, indent, dedent) left out, every string literal one `<STR_LIT>` token. The "
    "decoder reads the files as they are; a token is right iff every BPE piece overlapping "
    "it is the argmax given the text before it, a string literal iff the model puts a quote "
    "where it opens. The trigram predicts the same tokens from the two before them. Numbers "
    "must match exactly."
)


def _accuracy_text(acc: dict) -> str:
    """One token-accuracy result in words."""
    return (
        f"all lexical tokens {100 * acc['accuracy']:.1f}%, identifiers "
        f"{100 * acc['identifier_accuracy']:.1f}% ({acc['tokens']} tokens, {acc['files']} files)"
    )


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _rank_section(title: str, table: dict) -> list[str]:
    rows = [
        [
            name,
            f"{100 * m['top1']:.1f}%",
            f"{100 * m['top5']:.1f}%",
            f"{m['mrr10']:.3f}",
            str(m["n"]),
        ]
        for name, m in table.items()
        if m.get("n")
    ]
    return [f"### {title}", "", *_table(["method", "top-1", "top-5", "MRR@10", "n"], rows), ""]


def _statement_section(stmt: dict) -> list[str]:
    ns = sorted({int(n) for m in stmt.values() for n in m["by_n"]})
    out = ["### statement completion (next n tokens of the statement)", ""]
    for metric, label in (("rouge_l", "ROUGE-L"), ("meteor", "METEOR")):
        rows = []
        for name, m in stmt.items():
            cells = [f"{m['by_n'][str(n)][metric]:.1f}" if str(n) in m["by_n"] else "-" for n in ns]
            rows.append([name, *cells, f"{m['p50_ms']:.0f} ms"])
        header = ["method", *(f"n={n}" for n in ns), "p50"]
        out += [f"{label} (0-100):", "", *_table(header, rows), ""]
    first = next(iter(stmt.values()))["by_n"]
    counts = ", ".join(f"n={n}: {first[str(n)]['n']}" for n in ns if str(n) in first)
    return [*out, f"Samples per n: {counts}. {STATEMENT_NOTE}", ""]


def _infill_section(infill: dict) -> list[str]:
    rows = []
    for mode, m in infill.items():
        parts = [
            f"{100 * m[key]['exact']:.1f}% ({m[key]['n']})" if m[key].get("n") else "-"
            for key in ("to_line_end", "inside_line")
        ]
        rows.append(
            [mode, f"{100 * m['exact']:.1f}%", f"{m['edit_sim']:.1f}", *parts]
            + [f"{m['p50_ms']:.0f} ms", str(m["n"])]
        )
    header = ["mode", "exact match", "edit sim", "EM, span to line end", "EM, span inside line"]
    return [
        "### random-span infilling (mid-token modes, suffix in view)",
        "",
        *_table([*header, "p50", "n"], rows),
        "",
        INFILL_NOTE,
        "",
    ]


def _ablation_section(table: dict, mode: str) -> list[str]:
    rows = [
        [name, f"{100 * r['token_accuracy']:.1f}%", f"{100 * r['identifier_top1']:.1f}%"]
        + [f"{r['identifier_mrr10']:.3f}", f"{100 * r['line_exact']:.1f}%"]
        + [f"{r['line_edit_sim']:.1f}"]
        for name, r in table.items()
    ]
    header = ["model", "token acc", "identifier top-1", "identifier MRR@10", "line EM"]
    return [
        f"### ablation (decoder alone: {mode} mode, no CodeFill names, same samples)",
        "",
        *_table([*header, "line edit sim"], rows),
        "",
    ]


def to_markdown(results: dict) -> str:
    """The results as markdown tables."""
    out = [f"Command: `{results.get('command', '')}`", ""]
    if results.get("model_sha256"):
        out += [f"model.onnx sha256: `{results['model_sha256']}`", ""]
    if "wall_minutes" in results:
        out += [f"Wall time: {results['wall_minutes']} minutes.", ""]
    for section in ("identifier_starts", "cardinal_points", "mid_token"):
        out += _rank_section(section.replace("_", " "), results[section])
    if any("ensemble" in name for name in results["identifier_starts"]):
        out += [
            "The fillpoint rows mix CodeFill's names and the decoder's as whole names (weights "
            'tuned on the valid split); "bytelevel ensemble" instead averages CodeFill\'s '
            "next-byte distribution (from its names) with the decoder's exact one at every "
            "byte of the search, with CodeFill's weight.",
            "",
        ]
    if any(name.startswith("decoder alone") for name in results["identifier_starts"]):
        out += [
            '"decoder alone" rows rank the decoder\'s names only (no file frequencies, no '
            "CodeFill), in each mode: the other names of the mixture do not depend on where the "
            "prompt ends, so these rows show what each mode does to the decoder itself.",
            "",
        ]
    if line := results.get("line"):
        mode = results.get("line_mode", "healing")
        text = (
            f"{mode} ghost text: "
            f"exact match {100 * line['exact']:.1f}%, edit similarity {line['edit_sim']:.1f}, "
            f"n = {line['n']}, p50 {line['p50_ms']:.0f} ms"
        )
        if greedy := results.get("line_greedy"):
            text += (
                f" (the ghost text's beam of {results['line_beam']}; greedy decoding: "
                f"exact match {100 * greedy['exact']:.1f}%, edit similarity "
                f"{greedy['edit_sim']:.1f}, p50 {greedy['p50_ms']:.0f} ms)"
            )
        if alone := results.get("line_decoder_only"):
            text += (
                f". The document's own lines are mixed in at weight "
                f"{results['line_repeat_weight']:g} (where the line starts as others in the "
                f"file do); the beam without them: exact match {100 * alone['exact']:.1f}%, "
                f"edit similarity {alone['edit_sim']:.1f}, p50 {alone['p50_ms']:.0f} ms"
            )
        out += ["### line completion (rest of the line, left context only)", "", text, ""]
    if table := results.get("line_tokens"):
        rows = [
            [name, f"{100 * m['exact']:.1f}%", f"{m['edit_sim']:.1f}", str(m["n"])]
            for name, m in table.items()
            if m.get("n")
        ]
        out += _table(["method", "exact match (tokens)", "edit sim (tokens)", "n"], rows)
        out += [
            "",
            "The same samples on lexical tokens (the baselines make tokens, not layout): an "
            "exact match has the rest of the line's tokens, and edit similarity compares the "
            "tokens joined by single spaces.",
            "",
        ]
    if results.get("statement"):
        out += _statement_section(results["statement"])
    if results.get("infill"):
        out += _infill_section(results["infill"])
    if acc := results.get("token_accuracy"):
        out += ["### token-level accuracy (teacher-forced, CodeXGLUE rules)", ""]
        out += [f"fillpoint decoder: {_accuracy_text(acc)}", ""]
        for name, b in results.get("token_accuracy_baselines", {}).items():
            out += [f"{name}: {_accuracy_text(b)}", ""]
        if exact := acc.get("exact"):
            out += [
                f"Exact count (fillpoint decoder): {_accuracy_text(exact)}; every comment token "
                "scored and every string literal spelled out to its closing quote.",
                "",
            ]
        out += [TOKEN_ACCURACY_RULES, ""]
    if results.get("ablation"):
        out += _ablation_section(results["ablation"], results.get("line_mode", "healing"))
    lat = results.get("latency_p50_ms", {})
    if lat:
        out.append(
            "completion latency p50: " + ", ".join(f"{k} {v:.0f} ms" for k, v in lat.items())
        )
    return "\n".join(out) + "\n"


def plot_statement(stmt: dict, path: Path) -> None:
    """ROUGE-L and METEOR against n, one line per method."""
    import matplotlib

    matplotlib.use("Agg")  # headless: evaluations run on servers
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    metrics = (("rouge_l", "ROUGE-L"), ("meteor", "METEOR"))
    for ax, (metric, label) in zip(axes, metrics, strict=True):
        for name, m in stmt.items():
            ns = sorted(int(n) for n in m["by_n"])
            ax.plot(ns, [m["by_n"][str(n)][metric] for n in ns], marker="o", label=name)
        ax.set_xlabel("n (next tokens of the statement)")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score (0-100)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
