"""The two sections of `agent-otel check` output: the targets (with their summary line), then the installed
instrumentations (with theirs), a blank line apart."""

from __future__ import annotations


def targets_section(stdout: str) -> list[str]:
    return stdout.split("\n\n", 1)[0].splitlines()


def instrumentations_section(stdout: str) -> list[str]:
    return stdout.split("\n\n", 1)[1].splitlines()
