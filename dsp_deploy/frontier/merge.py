"""Replacing one method's rows of a committed accuracy-latency run with those of a later run (or adding
the rows of a method the run did not have).

A fix to one method (e.g. how DSP latency-targeted aligns its groups) should not force hours of
retraining every other method. A later run of only that method (``--methods dsp-latency``) retrains the
same dense models and measures its rows beside them; its rows may replace the committed ones when both
runs are comparable: the same machine, the same training settings (`RunSettings.key`) and, per model and
seed, a dense model of the same test accuracy (the later run retrained the same model). Anything else is
refused, naming what differs. The merged document lists each replacement with its command, wall time and
the timing settings in which it differs from the rest (e.g. longer timing windows): the report says so.
"""
from __future__ import annotations

import copy
from typing import Any

from dsp_deploy.errors import BenchError

TIMING = ("runs", "min_seconds", "stat", "match_steps", "plan_runs", "plan_batches")
"""Settings that change how rows were timed, not what was trained."""


def _settings(doc: dict[str, Any], what: str) -> Any:
    from dsp_deploy.frontier.settings import RunSettings

    try:
        return RunSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc["settings"].items()})
    except (KeyError, TypeError) as exc:
        raise BenchError(f"{what}: its settings are not those of an accuracy-latency run ({exc})") from None


def _dense(doc: dict[str, Any]) -> dict[tuple[str, int], Any]:
    return {(r["model"], r["seed"]): r.get("test_accuracy") for r in doc["rows"]
            if r["method"] == "dense" and r.get("status") == "ok"}


def replace_rows(base: dict[str, Any], update: dict[str, Any], source: str = "update") -> dict[str, Any]:
    """``base`` with the rows of ``update``'s methods for ``update``'s models and seeds replaced by
    ``update``'s; a dense row too where ``update`` re-ran every method ``base`` has for that model and
    seed (the same dense model, timed as the rows it brings). BenchError naming the difference when the
    runs are not comparable."""
    if base.get("machine") != update.get("machine"):
        raise BenchError(f"{source} was measured on {update.get('machine')}, the results on {base.get('machine')}: "
                         "latencies from two machines are not comparable")
    before, after = _settings(base, "the results"), _settings(update, source)
    if before.key() != after.key():
        raise BenchError(f"{source} trained under other settings than the results (data, epochs, learning rates)")
    dense_base, dense_update = _dense(base), _dense(update)
    for key, accuracy in sorted(dense_update.items()):
        if key not in dense_base:
            raise BenchError(f"{source} has {key[0]} seed {key[1]}, which the results do not")
        if dense_base[key] != accuracy:
            raise BenchError(f"{source}'s dense {key[0]} seed {key[1]} tests at {accuracy}%, the results' at "
                             f"{dense_base[key]}%: its rows were trained from another dense model")
    methods = [m for m in update["settings"]["methods"] if m != "dense"]
    new = [r for r in update["rows"] if r["method"] in methods]
    new += [r for r in update["rows"] if r["method"] == "dense" and _reruns_all(base, methods, r)]
    if not new:
        raise BenchError(f"{source} has no rows of its methods ({', '.join(methods) or 'none'}) to replace")
    by_key: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for row in new:
        by_key.setdefault((row["model"], row["seed"], row["method"]), []).append(row)
    merged = copy.deepcopy(base)
    merged["training_budget"] = update.get("training_budget", base.get("training_budget"))  # same settings (key)
    models = {r["model"] for r in new}
    had = {r["method"] for r in base["rows"] if r["model"] in models}  # per model: a method may be new to one
    replaced, kept = set(by_key), []
    for row in merged["rows"]:  # each replaced method's rows where its old ones were
        key = (row["model"], row["seed"], row["method"])
        if key not in replaced:
            kept.append(row)
        elif key in by_key:
            kept += by_key.pop(key)
    kept += [row for rows in by_key.values() for row in rows]  # methods the results did not have
    merged["rows"] = kept
    entry = {"methods": methods, "rows": len(new), "command": update.get("command"), "created": update.get("created"),
             "wall_seconds": update.get("wall_seconds"), "source": source}
    added = [m for m in methods if m not in had]
    if added:
        entry["added"] = added  # methods the results did not have: their rows are new, not replacements
    retimed = [f"{r['model']} seed {r['seed']}" for r in new if r["method"] == "dense"]
    if retimed:
        entry["dense_retimed"] = retimed
    timing = {k: _plain(getattr(after, k)) for k in TIMING if getattr(after, k) != getattr(before, k)}
    if timing:
        entry["timing"] = timing
        entry["timing_of_the_rest"] = {k: _plain(getattr(before, k)) for k in timing}
    merged.setdefault("replaced", []).append(entry)
    return merged


def _reruns_all(base: dict[str, Any], methods: list[str], dense: dict[str, Any]) -> bool:
    """Whether ``methods`` cover every method ``base`` has rows of for ``dense``'s model and seed."""
    had = {r["method"] for r in base["rows"] if (r["model"], r["seed"]) == (dense["model"], dense["seed"])}
    return had - {"dense"} <= set(methods)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _settings_text(values: dict[str, Any]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in values.items())


def replaced_lines(doc: dict[str, Any]) -> list[str]:
    """The report's lines on replaced rows (empty when none)."""
    return [f"rows of {', '.join(r['methods'])} ({r['rows']}) "
            f"{'added' if set(r.get('added', [])) == set(r['methods']) else 'replaced'} by a later run on the same "
            f"machine, training settings and dense models: `{r['command']}` "
            f"({r['wall_seconds']} s wall, {r['created']})"
            + (f"; timed with {_settings_text(r['timing'])} (the other rows: "
               f"{_settings_text(r['timing_of_the_rest'])})" if r.get("timing") else "")
            + (f"; its dense rows too ({', '.join(r['dense_retimed'])}: every method re-run)"
               if r.get("dense_retimed") else "")
            for r in doc.get("replaced", [])]
