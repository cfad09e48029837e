"""Test data written for the project: sentences whose label a keyword rule decides (see stub_server.KEYWORDS)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.stub_server import keyword_label

TEMPLATES = {
    "BACKGROUND": "Disease {d} remains a burden in region {i}.",
    "OBJECTIVE": "The aim of study {i} was to evaluate drug {d}.",
    "METHODS": "Patients in cohort {i} were randomized to drug {d} or placebo.",
    "RESULTS": "Blood pressure decreased in group {i} after drug {d}.",
    "CONCLUSIONS": "We conclude that drug {d} helps group {i}.",
}
DRUGS = ("A", "B", "C", "D", "E", "F", "G")


def make_table(per_label: int = 20) -> pd.DataFrame:
    rows = []
    for i in range(per_label):
        for label, template in TEMPLATES.items():
            sentence = template.format(i=i + 1, d=DRUGS[i % len(DRUGS)])
            assert keyword_label(sentence) == label, (sentence, label)
            rows.append({"description": sentence, "target": label})
    return pd.DataFrame(rows)


def write_csv(path: Path, per_label: int = 20) -> Path:
    make_table(per_label).to_csv(path, index=False)
    return path
