"""The gate's files for CI: Markdown for a pull-request comment, JUnit XML with one test case per check."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from compressor.errors import ExitCode
from compressor.report.gate import MARKDOWN_MARKER

MODEL = "models/digits_cnn.onnx"


def test_markdown_and_junit_reports_name_every_check(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("check", MODEL, "--update-baseline").code == ExitCode.OK
    baseline = project / "compressor-baseline.json"
    data = json.loads(baseline.read_text())
    data["models"][MODEL]["metrics"]["size"]["value"] = 400000
    baseline.write_text(json.dumps(data))
    result = cli(
        "check", MODEL, "--max-size", "300KB", "--max-params", "1M", "--baseline", baseline,
        "--report", "gate.md", "--junit", "reports/gate.xml",
    )  # fmt: skip
    assert result.code == ExitCode.CONSTRAINT_NOT_MET

    markdown = (project / "gate.md").read_text()
    lines = markdown.splitlines()
    assert lines[0] == MARKDOWN_MARKER and lines[1] == "## compressor check: FAIL"
    assert lines[3].startswith("2 of 4 checks failed (1 model): models/digits_cnn.onnx: max_size 609.7 KB > 300.0 KB")
    assert "| models/digits_cnn.onnx | max_size | 609.7 KB | 300.0 KB | -103.2% | FAIL |" in markdown
    assert "| models/digits_cnn.onnx | max_params | 151,308 | 1,000,000 | +84.9% | PASS |" in markdown
    assert "| models/digits_cnn.onnx | size | 400.0 KB | 609.7 KB | +52.4% | 5.0% | FAIL |" in markdown

    root = ET.parse(project / "reports" / "gate.xml").getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("4", "2", "0")
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == MODEL
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"max_size", "max_params", "baseline size", "baseline params"}
    failure = cases["max_size"].find("failure")
    assert failure is not None and "measured 609.7 KB, limit 300.0 KB" in failure.get("message", "")
    assert cases["max_params"].find("failure") is None
    assert cases["baseline size"].find("failure") is not None


def test_passing_report_and_json_report(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("check", MODEL, "--max-size", "1MB", "--report", "gate.md").code == ExitCode.OK
    assert "## compressor check: PASS" in (project / "gate.md").read_text()
    assert cli("check", MODEL, "--max-size", "1MB", "--report", "gate.json").code == ExitCode.OK
    envelope = json.loads((project / "gate.json").read_text())
    assert envelope["command"] == "check" and envelope["result"]["passed"] is True


def test_skipped_comparisons_are_junit_skips(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("check", MODEL, "--min-accuracy", "0.9", "--data", "data/test.npz", "--update-baseline").code == 0
    # accuracy is in the baseline but not measured now (no --data): shown as skipped, not failed
    result = cli("check", MODEL, "--baseline", "compressor-baseline.json", "--junit", "gate.xml")
    assert result.code == ExitCode.OK, result.output
    root = ET.parse(project / "gate.xml").getroot()
    skipped = [c.get("name") for c in root.iter("testcase") if c.find("skipped") is not None]
    assert skipped == ["baseline accuracy"] and root.get("skipped") == "1"
