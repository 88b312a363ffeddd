from __future__ import annotations


def grep_repo(pattern: str) -> list[str]:
    return [f"{pattern}:1: match"]
