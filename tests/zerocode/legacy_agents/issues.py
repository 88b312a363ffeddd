from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class IssueType(Enum):
    SYNTAX = "syntax"
    TYPE = "type"
    SECURITY = "security"


@dataclass
class Issue:
    id: str
    type: IssueType
    file: str


@dataclass
class FixResult:
    success: bool
    confidence: float
    fixes_applied: int
    files_modified: list[str]
    remaining_issues: int
