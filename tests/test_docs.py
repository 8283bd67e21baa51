"""The Python examples in the docs run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
# Packages of the optional extras ('otel', 'prometheus', 'parquet').
OPTIONAL = {"opentelemetry", "prometheus_client", "pyarrow"}
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
# Pages whose examples need files made by the shell commands before them: their own test runs
# the whole page in order.
RUN_BY_OWN_TEST = {"lab-02-real-vllm.md": "tests/vllm/test_lab_02.py"}


def examples() -> list[tuple[str, str]]:
    found = []
    for page in [DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))]:
        if page.name in RUN_BY_OWN_TEST:
            continue
        for i, code in enumerate(BLOCK.findall(page.read_text())):
            found.append((f"{page.name}#{i}", code))
    return found


@pytest.mark.parametrize(("where", "code"), examples(), ids=[w for w, _ in examples()])
def test_doc_example_runs(where: str, code: str) -> None:
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    try:
        exec(compile(code, where, "exec"), namespace)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in OPTIONAL:
            pytest.skip(f"needs the optional package {exc.name!r}")
        raise
    # Examples that show a user's test also run it.
    for name, value in namespace.items():
        if name.startswith("test_") and callable(value):
            value()
