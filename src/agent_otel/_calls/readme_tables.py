"""The README's option tables, generated from :mod:`agent_otel._calls.options`.

``python -m agent_otel._calls.readme_tables README.md`` rewrites every table between its markers;
a test fails when the README and the declarations differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from agent_otel._calls.options import CONFIG_KEYS, KINDS, Option
from agent_otel.errors import ConfigurationError

_BEGIN = "<!-- options:{kind} (generated from the option tables; tests/calls/test_options.py says how) -->"
_END = "<!-- /options:{kind} -->"
_BLOCK = re.compile(r"<!-- options:(?P<kind>\w+) [^\n]*-->\n.*?<!-- /options:(?P=kind) -->", re.DOTALL)


_CONFIG_DEFAULT_TEXT = {"owner": "the class, or the function", "function": "the function"}


def _default_text(option: Option) -> str:
    if option.config_default:
        return f"config: {_CONFIG_DEFAULT_TEXT[option.config_default]}"
    if option.default is None:
        return ""
    return f"`{str(option.default).lower() if isinstance(option.default, bool) else option.default}`"


def markdown_table(kind: str) -> str:
    """The README table of a kind's options (``config``: the keys every config entry takes; the
    kinds' tables leave out the config-only ones of those)."""
    table = CONFIG_KEYS if kind == "config" else KINDS[kind]
    in_code = any(option.decorator for option in table.values())
    lines = ["| Option | Value | Read at | Default | |", "|---|---|---|---|---|"]
    for option in table.values():
        if kind != "config" and option is CONFIG_KEYS.get(option.name) and not option.decorator:
            continue
        name = f"`{option.name}`"
        if option.keyword:
            name += f" (in code: `{option.keyword}`)" if option.keyword.startswith("**") \
                else f" (in code: `{option.keyword}=`)"
        if option.required_in_config:
            name += " **required**"
        elif option.required:
            name += " **required** in code"
        value = option.accepts.value + (", or an extractor" if option.extractor else "")
        where = "config only; " if kind != "config" and in_code and not option.decorator else ""
        read = f"call {option.when}" if option.when else ""
        lines.append(f"| {name} | {value} | {read} | {_default_text(option)} | {where}{option.doc} |")
    return "\n".join(lines)


def render_readme(text: str) -> str:
    """``text`` with every marked option table regenerated."""
    def block(match: re.Match[str]) -> str:
        kind = match["kind"]
        if kind not in KINDS and kind != "config":
            raise ConfigurationError(f"README option table for unknown kind {kind!r}")
        return f"{_BEGIN.format(kind=kind)}\n{markdown_table(kind)}\n{_END.format(kind=kind)}"

    return _BLOCK.sub(block, text)


def marked_kinds(text: str) -> list[str]:
    """The kinds whose option table ``text`` has markers for."""
    return [match["kind"] for match in _BLOCK.finditer(text)]


if __name__ == "__main__":
    readme = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    readme.write_text(render_readme(readme.read_text(encoding="utf-8")), encoding="utf-8")
