"""`fillpoint bench --profile`: where the time of one request goes, measured in-process.

The engine's stages are wrapped with timers from the outside (nothing in the engine changes):
context building, prompt encoding and healing, the ONNX calls (prefill of the prompt versus
one-token steps), the log-softmax over the vocabulary, the beam's masks, and re-ranking.
Whatever the beam search spends outside these is its bookkeeping (argsort, cache gathers).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from .bench_workload import Session

# (owner attribute path, label); patched on the module objects the engine looks them up on.
STAGES = [
    ("engine.build_context", "context"),
    ("decoding.heal", "heal (incl. encode)"),
    ("decoding.fim_prompt", "fim prompt (incl. encode)"),
    ("decoding.beam_identifiers", "beam search"),
    ("decoding.greedy_line", "greedy line"),
    ("decoding.allowed_for_need", "healing masks"),
    ("engine.codefill_names", "codefill names"),
    ("engine.rank", "rank"),
    ("engine.clean_inline", "post-process"),
]


QUICK_MS = 8.0  # a request this fast ran no model call worth the name


class StageTimer:
    """Inclusive wall time and call count per label."""

    def __init__(self) -> None:
        self.each: dict[str, list[float]] = defaultdict(list)  # every call's ms, per label
        self.paused = False  # untimed work (the prefetch before a request) runs while set

    @property
    def ms(self) -> dict[str, float]:
        """Total milliseconds per label."""
        return {label: sum(times) for label, times in self.each.items()}

    @property
    def calls(self) -> dict[str, int]:
        """Calls per label."""
        return {label: len(times) for label, times in self.each.items()}

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn`, timed under `label`."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.paused:
                return fn(*args, **kwargs)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.each[label].append((time.perf_counter() - t0) * 1000)

        return timed


@contextmanager
def _patched(obj: Any, name: str, value: Any):
    """Set an attribute for the duration of a block."""
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


class _TimedSession:
    """An onnxruntime session whose `run` is timed apart from prefill and one-token steps."""

    def __init__(self, session: Any, timer: StageTimer) -> None:
        self._session, self._timer = session, timer

    def run(self, outputs: Any, feeds: dict[str, Any]) -> Any:
        ids = feeds["input_ids"]
        label = "onnx prefill" if ids.shape[1] > 1 else "onnx step (1 token)"
        return self._timer.wrap(label, self._session.run)(outputs, feeds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def profile(
    model: str | None, sessions: list[Session], limit: int, top: int = 25, prefetch: bool = True
) -> str:
    """Run the sessions' requests in-process (documents as typed up to each request); a report.

    With `prefetch`, the engine first warms its caches untimed at the document as it was
    before the request's last keystroke, as the server does while the user pauses.
    """
    from fillpoint.completion import decoding
    from fillpoint.completion import engine as engine_mod
    from fillpoint.completion.documents import DocumentStore
    from fillpoint.completion.types import EngineSettings

    eng = engine_mod.Engine(EngineSettings(model_path=model))
    t0 = time.perf_counter()
    eng.load()
    load_ms = (time.perf_counter() - t0) * 1000
    if not eng.ready:
        raise SystemExit(f"fillpoint bench --profile: cannot load the model: {eng.error}")
    lm = eng._lm  # the profiler needs the runtime object itself to time its calls
    store = DocumentStore("utf-32")
    points = [(s, r) for s in sessions for r in s.requests][:limit]
    out = io.StringIO()
    print(f"model {eng.model_name} loaded in {load_ms:.0f} ms (in-process)", file=out)
    said = "warm at the text before the last keystroke" if prefetch else "not warmed"
    print(f"caches before each request: {said}\n", file=out)
    groups = {
        "complete at identifier starts": lambda r: r.kind == "complete" and r.typed == 0,
        "complete inside names": lambda r: r.kind == "complete" and r.typed > 0,
        "inline": lambda r: r.kind == "inline",
    }
    for group, wanted in groups.items():
        todo = [(s, r) for s, r in points if wanted(r)]
        if not todo:
            continue
        timer, prof = StageTimer(), cProfile.Profile()
        docs = [
            store.open(f"file:///p/{i}.py", s.text[: r.offset], 0) for i, (s, r) in enumerate(todo)
        ]
        earlier_store = DocumentStore("utf-32")  # the same documents a keystroke earlier
        before = [
            earlier_store.open(f"file:///p/{i}.py", s.before_keystroke(r), 0)
            for i, (s, r) in enumerate(todo)
        ]
        with ExitStack() as stack:
            mods = {"engine": engine_mod, "decoding": decoding}
            for path, label in STAGES:
                owner, name = path.split(".")
                if hasattr(mods[owner], name):
                    fn = getattr(mods[owner], name)
                    stack.enter_context(_patched(mods[owner], name, timer.wrap(label, fn)))
            stack.enter_context(_patched(lm, "session", _TimedSession(lm.session, timer)))
            stack.enter_context(
                _patched(lm, "step", timer.wrap("step (onnx + log-softmax)", lm.step))
            )
            stack.enter_context(_patched(lm, "encode", timer.wrap("tokenizer encode", lm.encode)))
            call = eng.inline if group == "inline" else eng.complete
            total = timer.wrap("total", call)
            idle = []  # wall ms of the idle work before each request
            prof.enable()
            for doc, earlier in zip(docs, before, strict=True):
                if prefetch:
                    prof.disable()
                    timer.paused = True
                    began = time.perf_counter()
                    eng.prepare(earlier, earlier.position_at(len(earlier.text)))
                    idle.append((time.perf_counter() - began) * 1000)
                    timer.paused = False
                    prof.enable()
                total(doc, doc.position_at(len(doc.text)))
            prof.disable()
        print(_stage_table(group, timer, len(docs)), file=out)
        if idle:
            print(_idle_line(idle), file=out)
        stats = pstats.Stats(prof, stream=out)
        print(f"cProfile of {group}, top {top} by own time:", file=out)
        stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def _idle_line(ms: list[float], pause_ms: float = 100.0) -> str:
    """How long the idle work before the requests took, against the replay's pause: where it
    takes longer, a request in the replay comes while the server is still working ahead."""
    xs = sorted(ms)
    over = sum(x > pause_ms for x in xs)
    return (
        f"  idle work before each request (prepare, untimed above): p50 {xs[len(xs) // 2]:.0f} ms,"
        f" p90 {xs[int(len(xs) * 0.9)]:.0f} ms, {over} of {len(xs)} over {pause_ms:.0f} ms\n"
    )


def _stage_table(kind: str, timer: StageTimer, n: int) -> str:
    """Per-request milliseconds and share of the total per stage (inclusive; nested stages)."""
    derived = timer.ms
    total = derived["total"] or 1.0
    each = sorted(timer.each["total"])
    quick = sum(ms < QUICK_MS for ms in each)
    lines = [
        f"{kind}: {n} requests, {derived['total'] / n:.1f} ms mean, "
        f"p50 {each[len(each) // 2]:.1f} ms, {quick} under {QUICK_MS:.0f} ms (wall, in-process)"
    ]
    lines.append(f"  {'stage':<28}{'ms/request':>11}{'calls/request':>15}{'share':>8}")
    search = derived.get("beam search", 0.0) + derived.get("greedy line", 0.0)
    inner = derived.get("step (onnx + log-softmax)", 0.0) + derived.get("healing masks", 0.0)
    derived["search bookkeeping (derived)"] = max(0.0, search - inner)
    onnx = derived.get("onnx prefill", 0.0) + derived.get("onnx step (1 token)", 0.0)
    derived["log-softmax etc. (derived)"] = max(
        0.0, derived.get("step (onnx + log-softmax)", 0.0) - onnx
    )
    counts = timer.calls
    for label, ms in sorted(derived.items(), key=lambda kv: -kv[1]):
        calls = counts.get(label)
        per_call = f"{calls / n:.1f}" if calls else ""
        lines.append(f"  {label:<28}{ms / n:>11.2f}{per_call:>15}{100 * ms / total:>7.0f}%")
    return "\n".join(lines) + "\n"


def main_profile(
    model: str | None, sessions: list[Session], limit: int, out: Path | None, prefetch: bool = True
) -> int:
    """Print (and optionally save) the profile report."""
    text = profile(model, sessions, limit, prefetch=prefetch)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return 0
