"""Build the training corpus: the standard library plus pinned PyPI wheels, split by package."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import stat
import subprocess
import sys
import sysconfig
import warnings
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from .neardup import NearDuplicateIndex

MAX_FILE_BYTES = 512 * 1024  # generated tables and vendored blobs teach nothing about code
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024  # total uncompressed .py bytes read from one wheel
SPLITS = ("train", "valid", "test")
STDLIB = "python-stdlib"


@dataclass(frozen=True)
class Requirement:
    """One pinned package of the manifest."""

    name: str
    version: str

    @property
    def spec(self) -> str:
        """The pip requirement string."""
        return f"{self.name}=={self.version}"


@dataclass
class CorpusStats:
    """Counts the build reports and writes into the model card."""

    files: Counter = field(default_factory=Counter)
    chars: Counter = field(default_factory=Counter)
    packages: dict[str, list[str]] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)

    def to_json(self) -> dict:
        """A JSON-ready summary."""
        return {
            "files": dict(self.files),
            "chars": dict(self.chars),
            "packages": self.packages,
            "skipped": dict(self.skipped),
        }


def default_manifest() -> Path:
    """The manifest that ships with fillpoint."""
    return Path(str(resources.files("fillpoint.training") / "data" / "corpus_manifest.txt"))


def load_manifest(path: Path) -> list[Requirement]:
    """Parse `name==version` lines; comments and blank lines are ignored."""
    reqs = []
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name or not version:
            raise ValueError(f"{path}:{lineno}: expected name==version, got {raw!r}")
        reqs.append(Requirement(name.strip().lower(), version.strip()))
    return reqs


def split_of(package: str, valid_pct: int = 5, test_pct: int = 8) -> str:
    """Assign a package to a split by a stable hash of its name, so files never leak across."""
    if package == STDLIB:
        return "train"
    bucket = int(hashlib.sha256(package.encode()).hexdigest(), 16) % 100
    if bucket < test_pct:
        return "test"
    if bucket < test_pct + valid_pct:
        return "valid"
    return "train"


def download(reqs: list[Requirement], dest: Path, jobs: int = 8) -> dict[Requirement, Path]:
    """Fetch each pinned wheel with pip (cached in `dest`); returns the wheel of each package."""
    dest.mkdir(parents=True, exist_ok=True)

    def find(req: Requirement) -> Path | None:
        stem = re.sub(r"[-_.]+", "_", req.name)
        for wheel in dest.glob("*.whl"):
            name, _, rest = wheel.name.partition("-")
            if re.sub(r"[-_.]+", "_", name).lower() == stem and rest.startswith(req.version + "-"):
                return wheel
        return None

    def fetch(req: Requirement) -> tuple[Requirement, Path | None]:
        found = find(req)
        if found is None:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
            cmd += ["--only-binary", ":all:", "--python-version", "3.11", "-d", str(dest), req.spec]
            subprocess.run(cmd, capture_output=True, check=False)
            found = find(req)
        return req, found

    out: dict[Requirement, Path] = {}
    with ThreadPoolExecutor(jobs) as pool:
        for req, wheel in tqdm(pool.map(fetch, reqs), total=len(reqs), desc="download"):
            if wheel is None:
                warnings.warn(f"could not download {req.spec}; skipped", stacklevel=2)
            else:
                out[req] = wheel
    return out


def safe_member(info: zipfile.ZipInfo) -> bool:
    """A wheel member we may read: a regular file with a relative path that stays in the tree."""
    path = PurePosixPath(info.filename)
    if path.is_absolute() or ".." in path.parts or "\\" in info.filename:
        return False
    mode = info.external_attr >> 16
    return not (mode and stat.S_ISLNK(mode)) and not info.is_dir()


def read_wheel(wheel: Path, stats: CorpusStats) -> list[tuple[str, bytes]]:
    """The .py files of a wheel as (path, bytes), read in memory: nothing is written to disk."""
    files = []
    total = 0
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".py"):
                continue
            if not safe_member(info):
                stats.skipped["unsafe path"] += 1
                continue
            if info.file_size > MAX_FILE_BYTES:
                stats.skipped["too large"] += 1
                continue
            total += info.file_size
            if total > MAX_ARCHIVE_BYTES:
                stats.skipped["archive limit"] += 1
                break
            files.append((info.filename, zf.read(info)))
    return files


def read_stdlib(stats: CorpusStats) -> list[tuple[str, bytes]]:
    """The standard library's .py files (site-packages excluded)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("site-packages/") or path.is_symlink():
            continue
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            stats.skipped["too large"] += 1
            continue
        files.append((rel, path.read_bytes()))
    return files


def normalize_for_dedup(text: str) -> str:
    """Whitespace- and comment-insensitive form: copies that differ only in layout collide."""
    lines = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(re.sub(r"\s+", " ", line))
    return "\n".join(lines)


def accept(
    raw: bytes, stats: CorpusStats, seen: set[str], near: NearDuplicateIndex | None = None
) -> str | None:
    """Decode, parse and deduplicate (exact, layout-only, near) one file; count skips."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        stats.skipped["not utf-8"] += 1
        return None
    if not text.strip():
        stats.skipped["empty"] += 1
        return None
    key = hashlib.sha256(normalize_for_dedup(text).encode()).hexdigest()
    if key in seen:
        stats.skipped["duplicate"] += 1
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        stats.skipped["not Python 3"] += 1
        return None
    if near is not None and not near.add(text):
        stats.skipped["near duplicate"] += 1
        return None
    seen.add(key)
    return text.replace("\r\n", "\n")


def build(out: Path, manifest: Path, cache: Path, with_stdlib: bool = True) -> CorpusStats:
    """Write `{out}/{split}.jsonl` records `{package, path, text}` and `{out}/stats.json`."""
    reqs = load_manifest(manifest)
    wheels = download(reqs, cache)
    out.mkdir(parents=True, exist_ok=True)
    stats = CorpusStats(packages={s: [] for s in SPLITS})
    seen: set[str] = set()
    near = NearDuplicateIndex()
    sinks = {s: (out / f"{s}.jsonl").open("w", encoding="utf-8") for s in SPLITS}
    sources: list[tuple[str, object]] = [(STDLIB, None)] if with_stdlib else []
    sources += [(req.name, wheels[req]) for req in reqs if req in wheels]
    try:
        for package, wheel in tqdm(sources, desc="extract"):
            split = split_of(package)
            files = read_stdlib(stats) if wheel is None else read_wheel(wheel, stats)
            kept = 0
            for path, raw in files:
                text = accept(raw, stats, seen, near)
                if text is None:
                    continue
                record = {"package": package, "path": path, "text": text}
                sinks[split].write(json.dumps(record) + "\n")
                stats.files[split] += 1
                stats.chars[split] += len(text)
                kept += 1
            if kept:
                stats.packages[split].append(package)
    finally:
        for sink in sinks.values():
            sink.close()
    (out / "stats.json").write_text(json.dumps(stats.to_json(), indent=2))
    return stats


def iter_split(corpus: Path, split: str):
    """Yield the records of one split."""
    with (corpus / f"{split}.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)
