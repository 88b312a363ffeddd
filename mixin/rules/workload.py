"""The synthetic workload of the recording-rule unit tests, read from ``workload.yaml``.

The file is data: metric names are templates over :mod:`mixin.names` (``"{AGENT_DUR}_count"``) and label
keys are names of it (``AGENT``), so the workload follows the telemetry contract like the rules do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import yaml

from mixin import names

WORKLOAD_FILE = Path(__file__).with_name("workload.yaml")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_RATE = re.compile(r"\d+(?:/\d+)?")


class WorkloadError(ValueError):
    """workload.yaml is malformed; the message names the file, the entry and the key."""


@dataclass(frozen=True)
class Series:
    """A counter growing at a constant rate: ``per_second`` more every second, from 0."""

    metric: str
    labels: dict[str, str]
    per_second: Fraction


def load(path: Path = WORKLOAD_FILE) -> list[Series]:
    """Every series of the workload, a histogram's ``buckets`` expanded to one series per ``le``."""
    doc = yaml.safe_load(path.read_text())
    entries = doc.get("series") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise WorkloadError(f"{path}: expected a top-level `series:` list")
    return [series for index, entry in enumerate(entries) for series in _entry(path, index, entry)]


def _contract_names() -> dict[str, str]:
    return {key: value for key, value in vars(names).items() if key.isupper() and isinstance(value, str)}


def _entry(path: Path, index: int, entry: object) -> list[Series]:
    where = f"{path}: series[{index}]"
    if not isinstance(entry, dict) or set(entry) - {"metric", "labels", "per_second", "buckets"}:
        raise WorkloadError(f"{where}: expected a mapping with metric, labels and per_second or buckets")
    contract = _contract_names()
    metric = _metric(where, contract, entry.get("metric"))
    labels = _labels(where, contract, entry.get("labels", {}))
    if ("per_second" in entry) == ("buckets" in entry):
        raise WorkloadError(f"{where}: give exactly one of per_second and buckets")
    if "per_second" in entry:
        return [Series(metric, labels, _rate(f"{where}.per_second", entry["per_second"]))]
    buckets = entry["buckets"]
    if not isinstance(buckets, dict) or not all(isinstance(le, str) for le in buckets):
        raise WorkloadError(f"{where}.buckets: expected a mapping from quoted `le` bounds to rates")
    return [
        Series(metric, {**labels, "le": le}, _rate(f"{where}.buckets[{le!r}]", rate)) for le, rate in buckets.items()
    ]


def _metric(where: str, contract: dict[str, str], template: object) -> str:
    if not isinstance(template, str):
        raise WorkloadError(f"{where}.metric: expected a string such as '{{AGENT_DUR}}_count'")
    unknown = [name for name in _PLACEHOLDER.findall(template) if name not in contract]
    if unknown:
        raise WorkloadError(f"{where}.metric: {unknown} are not names of mixin/names.py")
    return _PLACEHOLDER.sub(lambda found: contract[found[1]], template)


def _labels(where: str, contract: dict[str, str], labels: object) -> dict[str, str]:
    if not isinstance(labels, dict):
        raise WorkloadError(f"{where}.labels: expected a mapping of names of mixin/names.py to values")
    unknown = [key for key in labels if key not in contract]
    if unknown:
        raise WorkloadError(f"{where}.labels: {unknown} are not names of mixin/names.py")
    return {contract[key]: str(value) for key, value in labels.items()}


def _rate(where: str, value: object) -> Fraction:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _RATE.fullmatch(value))):
        raise WorkloadError(f"{where}: expected a whole number or a fraction such as 1/2, got {value!r}")
    return Fraction(value)
