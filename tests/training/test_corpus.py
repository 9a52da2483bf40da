"""Corpus: manifest parsing, package splits, safe wheel reading, filtering and deduplication."""

from __future__ import annotations

import json
import stat
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from fillpoint.training import corpus
from fillpoint.training.corpus import (
    MAX_FILE_BYTES,
    STDLIB,
    CorpusStats,
    Requirement,
    accept,
    load_manifest,
    read_wheel,
    safe_member,
    split_of,
)

SYMLINK_MODE = (stat.S_IFLNK | 0o777) << 16
REGULAR_MODE = (stat.S_IFREG | 0o644) << 16


def write_zip(path: Path, members: list[tuple[str, bytes, int]]) -> Path:
    """A zip whose members (name, data, external mode bits) are written exactly as given."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def member(name: str, mode: int = REGULAR_MODE) -> zipfile.ZipInfo:
    """A bare ZipInfo with the given name and mode."""
    info = zipfile.ZipInfo(name)
    info.external_attr = mode
    return info


# --- manifest -------------------------------------------------------------------------------


def test_manifest_parses_pins_comments_and_case(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("# header\n\nRequests==2.32.3  # pinned\n  attrs == 26.1.0\n")
    assert load_manifest(path) == [
        Requirement("requests", "2.32.3"),
        Requirement("attrs", "26.1.0"),
    ]
    assert load_manifest(path)[0].spec == "requests==2.32.3"


@pytest.mark.parametrize("line", ["requests", "requests>=2.0", "==1.0", "requests==", "a=1"])
def test_manifest_rejects_lines_without_a_pin(tmp_path: Path, line: str) -> None:
    path = tmp_path / "m.txt"
    path.write_text(f"ok==1.0\n# comment\n{line}\n")
    with pytest.raises(ValueError, match=r"m\.txt:3: expected name==version"):
        load_manifest(path)


def test_bundled_manifest_is_valid_and_has_no_duplicates() -> None:
    reqs = load_manifest(corpus.default_manifest())
    assert len(reqs) > 50
    assert len({r.name for r in reqs}) == len(reqs)


# --- splits ---------------------------------------------------------------------------------


def test_split_of_is_pinned_to_a_stable_hash() -> None:
    # Pinned values: a per-process hash (builtin hash()) would move packages between splits.
    expected = {
        "requests": "train",
        "pydantic": "test",
        "idna": "valid",
        "packaging": "valid",
        "setuptools": "valid",
    }
    assert {name: split_of(name) for name in expected} == expected


def test_split_of_keeps_the_stdlib_in_train_and_roughly_follows_the_percentages() -> None:
    assert split_of(STDLIB) == "train"
    counts = Counter(split_of(f"package-{i}") for i in range(4000))
    assert 0.06 < counts["test"] / 4000 < 0.10
    assert 0.03 < counts["valid"] / 4000 < 0.07
    assert split_of("anything", valid_pct=0, test_pct=0) == "train"
    assert split_of("anything", valid_pct=0, test_pct=100) == "test"


# --- wheel members --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "info",
    [
        member("/etc/evil.py"),
        member("../evil.py"),
        member("pkg/../../evil.py"),
        member("pkg\\..\\evil.py"),
        member("pkg/link.py", SYMLINK_MODE),
        member("pkg/sub/"),
    ],
    ids=["absolute", "parent", "nested-parent", "backslash", "symlink", "directory"],
)
def test_safe_member_rejects(info: zipfile.ZipInfo) -> None:
    assert not safe_member(info)


@pytest.mark.parametrize("info", [member("pkg/mod.py"), member("pkg/a..b.py"), member("m.py", 0)])
def test_safe_member_accepts_regular_relative_files(info: zipfile.ZipInfo) -> None:
    assert safe_member(info)


def test_read_wheel_keeps_only_safe_small_python_members(tmp_path: Path) -> None:
    big = b"x = 1\n" * (MAX_FILE_BYTES // 6 + 1)
    wheel = write_zip(
        tmp_path / "pkg-1.0-py3-none-any.whl",
        [
            ("pkg/__init__.py", b"VALUE = 1\n", REGULAR_MODE),
            ("../evil.py", b"import os\n", REGULAR_MODE),
            ("/abs.py", b"import os\n", REGULAR_MODE),
            ("pkg/link.py", b"pkg/__init__.py", SYMLINK_MODE),
            ("pkg/big.py", big, REGULAR_MODE),
            ("pkg/latin1.py", "name = 'caf\xe9'\n".encode("latin-1"), REGULAR_MODE),
            ("pkg/data.txt", b"not python", REGULAR_MODE),
        ],
    )
    stats = CorpusStats()
    files = dict(read_wheel(wheel, stats))
    assert files == {
        "pkg/__init__.py": b"VALUE = 1\n",
        "pkg/latin1.py": b"name = 'caf\xe9'\n",
    }
    assert stats.skipped == Counter({"unsafe path": 3, "too large": 1})
    assert not (tmp_path / "evil.py").exists() and not (tmp_path / "pkg").exists()
    assert accept(files["pkg/latin1.py"], stats, set()) is None
    assert stats.skipped["not utf-8"] == 1


def test_read_wheel_stops_at_the_archive_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus, "MAX_ARCHIVE_BYTES", 25)
    wheel = write_zip(
        tmp_path / "w.whl", [(f"pkg/m{i}.py", b"x = 1\n" * 2, REGULAR_MODE) for i in range(5)]
    )
    stats = CorpusStats()
    assert [p for p, _ in read_wheel(wheel, stats)] == ["pkg/m0.py", "pkg/m1.py"]
    assert stats.skipped["archive limit"] == 1


# --- accept ---------------------------------------------------------------------------------


def test_accept_drops_copies_that_differ_only_in_layout_and_comments() -> None:
    stats, seen = CorpusStats(), set()
    original = b"def f(x):\n    return x + 1\n"
    copy = b"# vendored copy\ndef f(x):   # same\n\n\n        return x  +  1\r\n"
    other = b"def f(x):\n    return x + 2\n"
    assert accept(original, stats, seen) == original.decode()
    assert accept(copy, stats, seen) is None
    assert accept(other, stats, seen) == other.decode()
    assert stats.skipped == Counter({"duplicate": 1})


def test_accept_rejects_python2_empty_and_keeps_no_trace_of_rejects() -> None:
    stats, seen = CorpusStats(), set()
    py2 = b'print "hello"\nexec "x = 1"\n'
    assert accept(py2, stats, seen) is None
    assert accept(py2, stats, seen) is None  # a rejected file is not remembered as seen
    assert accept(b"  \n\n", stats, seen) is None
    assert accept(b"except ValueError, e:\n    pass\n", stats, seen) is None
    assert stats.skipped == Counter({"not Python 3": 3, "empty": 1})
    assert seen == set()


def test_accept_normalizes_crlf() -> None:
    assert accept(b"x = 1\r\ny = 2\r\n", CorpusStats(), set()) == "x = 1\ny = 2\n"


# --- build ----------------------------------------------------------------------------------


def test_build_writes_each_package_to_its_own_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["requests", "pydantic", "idna"]  # train, test, valid (pinned above)
    (tmp_path / "manifest.txt").write_text("".join(f"{n}==1.0\n" for n in names))
    wheels = {}
    for n in names:
        wheels[Requirement(n, "1.0")] = write_zip(
            tmp_path / f"{n}-1.0-py3-none-any.whl",
            [
                (f"{n}/__init__.py", f"NAME = {n!r}\n".encode(), REGULAR_MODE),
                (f"{n}/core.py", f"def {n}_main():\n    return 1\n".encode(), REGULAR_MODE),
                (f"{n}/shared.py", b"def shared():\n    return 0\n", REGULAR_MODE),
            ],
        )
    monkeypatch.setattr(corpus, "download", lambda reqs, dest, jobs=8: wheels)
    out = tmp_path / "corpus"
    stats = corpus.build(out, tmp_path / "manifest.txt", tmp_path / "cache", with_stdlib=False)

    by_split = {s: list(corpus.iter_split(out, s)) for s in corpus.SPLITS}
    for split, records in by_split.items():
        assert {r["package"] for r in records} <= {n for n in names if split_of(n) == split}
    assert stats.packages == {"train": ["requests"], "valid": ["idna"], "test": ["pydantic"]}
    # shared.py is identical in every wheel: only the first copy is kept
    assert sum(r["path"].endswith("shared.py") for rs in by_split.values() for r in rs) == 1
    assert stats.skipped["duplicate"] == 2
    assert sum(stats.files.values()) == 7
    saved = json.loads((out / "stats.json").read_text())
    assert saved["files"] == dict(stats.files) and saved["skipped"] == {"duplicate": 2}
