"""One `netshrink survey --quick` run shared by the survey tests (it costs a minute or more)."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from netshrink.cli import main


@dataclass
class QuickSurvey:
    out: Path
    results: dict  # results.json as the full quick run wrote it
    html: str  # report.html as the full quick run wrote it


@pytest.fixture(scope="session")
def quick_survey(tmp_path_factory) -> QuickSurvey:
    out = tmp_path_factory.mktemp("survey")
    assert main(["survey", "--quick", "--out", str(out)]) == 0
    # Snapshots: a later test re-runs a subset into the same folder (to check reuse).
    results = json.loads((out / "results.json").read_text())
    return QuickSurvey(out, results, (out / "report.html").read_text())


@pytest.fixture(scope="session")
def survey_dir(quick_survey) -> Path:
    return quick_survey.out
