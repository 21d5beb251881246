"""Corrupted and hostile variants of every file type dsp-deploy reads, and the check that each
one ends cleanly: one error line naming the file, a non-zero exit, no traceback, no output file,
no pickled code run. Shared by tests/robustness/test_hostile_files.py and report.py.

A variant may also be *accepted* (a flipped byte inside weight data or a JSON string still makes
a valid file): that is clean too when the command then succeeds, or stops at a deliberately
invalid later argument (the *sentinel*, for readers whose success would start a long run).
"""
from __future__ import annotations

import contextlib
import io
import pickle
import random
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SENTINEL = "SENTINEL-no-such-dataset"


class Evil:
    """Unpickling this calls ``open(marker, "w")``: a loader that runs pickled code creates the marker."""

    marker = "/nonexistent"

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


@dataclass(frozen=True)
class Variant:
    """One corrupted file: ``data`` bytes, or None for "a directory instead of a file"."""

    kind: str  # truncate | flip | empty | directory | wrong-type | pickle
    label: str
    data: bytes | None


@dataclass(frozen=True)
class Outcome:
    """How a variant ended: ``clean`` and, if not, why."""

    variant: Variant
    status: str  # rejected | accepted | unclean
    detail: str

    @property
    def clean(self) -> bool:
        return self.status != "unclean"


def hostile_pickles(marker: Path, scripted: Path | None = None) -> list[Variant]:
    """A raw pickle, a torch.save zip and (given a TorchScript archive) that archive with its
    data.pkl replaced: each would create ``marker`` if unpickled by a code-running loader."""
    import torch

    Evil.marker = str(marker)
    raw = pickle.dumps({"format": "dsp-deploy/checkpoint", "payload": Evil()}, protocol=2)
    buffer = io.BytesIO()
    torch.save({"format": "dsp-deploy/checkpoint", "format_version": 1, "payload": Evil()}, buffer)
    variants = [Variant("pickle", "raw pickle, __reduce__ -> open(marker)", raw),
                Variant("pickle", "torch.save zip, __reduce__ -> open(marker)", buffer.getvalue())]
    if scripted is not None:
        out = io.BytesIO()
        with zipfile.ZipFile(scripted) as src, zipfile.ZipFile(out, "w") as dst:
            for item in src.infolist():
                data = raw if item.filename.endswith("/data.pkl") else src.read(item.filename)
                dst.writestr(item, data)
        variants.append(Variant("pickle", "TorchScript archive, data.pkl -> open(marker)", out.getvalue()))
    return variants


def variants(good: bytes, wrong: dict[str, bytes], marker: Path, *, seed: int, truncations: int, flips: int,
             scripted: Path | None = None) -> list[Variant]:
    """Truncations at spread and random offsets, seeded byte flips, empty, a directory, files of
    other types and hostile pickles, for a valid file ``good``."""
    rng = random.Random(seed)
    size = len(good)
    offsets = {1, 2, 8, 64, size // 2, size - 1} | {rng.randrange(1, size) for _ in range(truncations)}
    offsets = sorted(o for o in offsets if 0 < o < size)[:truncations]
    out = [Variant("truncate", f"first {o} of {size} bytes", good[:o]) for o in offsets]
    for i in range(flips):
        data = bytearray(good)
        count = rng.choice((1, 1, 4, 32))
        spots = [rng.randrange(size) for _ in range(count)]
        for spot in spots:
            data[spot] ^= rng.randrange(1, 256)
        if bytes(data) != good:
            where = f"{spots[:3]}{'...' if count > 3 else ''}"
            out.append(Variant("flip", f"{count} byte(s) flipped at {where}", bytes(data)))
    out.append(Variant("empty", "empty file", b""))
    out.append(Variant("directory", "a directory at the path", None))
    out += [Variant("wrong-type", f"a {name} instead", data) for name, data in wrong.items()]
    out += hostile_pickles(marker, scripted)
    return out


@contextlib.contextmanager
def placed(variant: Variant, path: Path) -> Iterator[Path]:
    """Put ``variant`` at ``path`` (a file, or a directory), removing it afterwards."""
    if variant.data is None:
        path.mkdir(parents=True)
    else:
        path.write_bytes(variant.data)
    try:
        yield path
    finally:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``dsp-deploy argv`` in this process: exit code and what it printed on stderr."""
    from dsp_deploy.cli.main import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # noqa: BLE001 - an escaped exception is an unclean ending
            return -1, f"Traceback (escaped {type(exc).__name__}: {exc})"
    return code, err.getvalue()


def judge_cli(variant: Variant, path: Path, code: int, stderr: str, outputs: list[Path], marker: Path,
              sentinel: str | None = None) -> Outcome:
    """Classify a CLI run on a corrupted ``path`` (see the module docstring)."""
    leftovers = [p for out in outputs for p in out.parent.glob(f".{out.name}.*")] if outputs else []
    errors = [line for line in stderr.splitlines() if ": error:" in line or "internal error" in line]
    problems = []
    if marker.exists():
        problems.append("pickled code ran (marker created)")
    if "Traceback" in stderr:
        problems.append("traceback printed")
    if leftovers:
        problems.append(f"temporary file left: {leftovers[0].name}")
    if code == 0:
        status = "accepted" if not problems else "unclean"
        return Outcome(variant, status, "; ".join(problems) or "still a valid file; the command succeeded")
    if sentinel and len(errors) == 1 and sentinel in errors[0] and not problems:
        return Outcome(variant, "accepted", f"still a valid file; stopped at the sentinel: {errors[0][:120]}")
    if any(out.exists() for out in outputs):
        problems.append("output file written")
    if len(errors) != 1:
        problems.append(f"{len(errors)} error lines")
    elif "internal error" in errors[0]:
        problems.append(f"internal error: {errors[0][:160]}")
    elif str(path) not in errors[0] and path.name not in errors[0]:
        problems.append(f"error line does not name the file: {errors[0][:160]}")
    if problems:
        return Outcome(variant, "unclean", "; ".join(problems) + f" | {stderr.strip()[-300:]}")
    return Outcome(variant, "rejected", errors[0][:200])


def judge_api(variant: Variant, path: Path, call: Callable[[Path], object], marker: Path) -> Outcome:
    """Classify a library reader (for files no CLI command reads): its own one-line error naming
    the file, or a successful read."""
    from dsp_deploy.errors import DSPDeployError

    try:
        call(path)
    except DSPDeployError as exc:
        text = str(exc)
        bad = [m for m, ok in (("marker created", not marker.exists()), ("more than one line", "\n" not in text),
                              ("error does not name the file", str(path) in text or path.name in text)) if not ok]
        return Outcome(variant, "unclean" if bad else "rejected", "; ".join(bad) or f"error: {text[:200]}")
    except BaseException as exc:  # noqa: BLE001 - anything else is an unclean ending
        return Outcome(variant, "unclean", f"{type(exc).__name__}: {str(exc)[:200]}")
    if marker.exists():
        return Outcome(variant, "unclean", "pickled code ran (marker created)")
    return Outcome(variant, "accepted", "still a valid file; read without error")
