"""CI runs the optional integrations' tests: every extra whose tests exist is installed there."""

from __future__ import annotations

import importlib
import os
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
# The module each extra's tests import; a test of an extra skips when it is missing.
EXTRA_MODULES = {
    "otel": "opentelemetry.sdk.trace",
    "prometheus": "prometheus_client",
    "parquet": "pyarrow.parquet",
}
# The exporters the OpenTelemetry tests export through, installed by the Makefile.
OTLP_EXPORTER_MODULES = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.json.file.trace_exporter",
)


def test_the_extras_checked_here_exist() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(EXTRA_MODULES) <= set(extras)


def test_make_test_installs_every_extra_and_the_otlp_exporters() -> None:
    makefile = (ROOT / "Makefile").read_text()
    install = next(line for line in makefile.splitlines() if "pip install --quiet -e" in line)
    for extra in ("test", "dev", *EXTRA_MODULES):
        assert extra in install.split("'")[1].strip(".[]").split(","), extra
    assert "$(OTLP_EXPORTERS)" in install
    for package in (
        "opentelemetry-exporter-otlp-proto-http",
        "opentelemetry-exporter-otlp-json-file",
    ):
        assert package in makefile


@pytest.mark.skipif(
    os.environ.get("CI", "").lower() != "true", reason="checks the CI environment (CI=true)"
)
@pytest.mark.parametrize("module", [*EXTRA_MODULES.values(), *OTLP_EXPORTER_MODULES])
def test_ci_has_every_extra_installed(module: str) -> None:
    importlib.import_module(module)  # in CI a missing extra fails here instead of skipping
