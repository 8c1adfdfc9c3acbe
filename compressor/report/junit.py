"""JUnit XML, the report format CI systems (GitLab, Jenkins, Azure, GitHub test-report actions) show natively.

One ``<testsuite>`` per group (for the gate: per model), one ``<testcase>`` per check, with ``<failure>`` or
``<skipped>`` where it applies.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class JUnitCase:
    name: str
    classname: str
    #: One-line failure message; None when the case passed or was skipped.
    failure: str | None = None
    #: A skip reason; None unless the case was skipped.
    skipped: str | None = None
    #: Longer text shown with the case (measured values, limits).
    details: str = ""
    seconds: float = 0.0


def _counts(cases: list[JUnitCase]) -> dict[str, str]:
    """The tests / failures / errors / skipped attributes of a suite holding ``cases``."""
    return {
        "tests": str(len(cases)),
        "failures": str(sum(c.failure is not None for c in cases)),
        "errors": "0",
        "skipped": str(sum(c.skipped is not None for c in cases)),
    }


def junit_xml(name: str, suites: dict[str, list[JUnitCase]], seconds: float = 0.0) -> str:
    """The document for ``suites`` (suite name -> its cases), as a string with an XML declaration."""
    cases = [case for group in suites.values() for case in group]
    root = ET.Element("testsuites", name=name, **_counts(cases), time=f"{seconds:.3f}")
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for suite_name, group in suites.items():
        suite = ET.SubElement(
            root, "testsuite", name=suite_name, **_counts(group), time=f"{sum(c.seconds for c in group):.3f}",
            timestamp=stamp,
        )  # fmt: skip
        for case in group:
            element = ET.SubElement(
                suite, "testcase", name=case.name, classname=case.classname, time=f"{case.seconds:.3f}"
            )
            if case.failure is not None:
                failure = ET.SubElement(element, "failure", message=case.failure, type="CheckFailed")
                failure.text = case.details or case.failure
            elif case.skipped is not None:
                ET.SubElement(element, "skipped", message=case.skipped)
            if case.details and case.failure is None:
                ET.SubElement(element, "system-out").text = case.details
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
