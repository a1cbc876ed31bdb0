"""The review page builder: cases found, images put in radiological order, page and case files written, decisions
read back, one-line errors."""

from __future__ import annotations

import base64
import json
import re
import zlib

import numpy as np
import pytest
from typer.testing import CliRunner

from infarctsam.cli import app
from infarctsam.errors import InputError
from infarctsam.review.collect import collect_cases
from infarctsam.review.decisions import read_decisions
from infarctsam.review.slices import display_stack

runner = CliRunner()


def _rows(html: str) -> list[dict]:
    text = re.search(r'<script id="review-rows" type="application/json">(.*?)</script>', html, re.S).group(1)
    return json.loads(text)


def test_radiological_display_order(marker_volume):
    data, aff = marker_volume
    stack, spacing = display_stack(data, aff)
    k, r, c = np.unravel_index(int(np.argmax(stack)), stack.shape)
    # patient's right on the image's LEFT, anterior at the TOP, superior slices LAST
    assert c < stack.shape[2] // 2 and r < stack.shape[1] // 2 and k >= stack.shape[0] - 2
    assert sorted(spacing) == sorted((2.0, 2.5, 5.0)) and spacing[2] == pytest.approx(5.0)


def test_collect_finds_cases_failures_and_warnings(batch_out):
    cases = {c.case: c for c in collect_cases([batch_out])}
    assert set(cases) == {"alpha", "bravo", "charlie", "delta"}
    assert cases["delta"].status == "failed" and cases["delta"].warnings[0].startswith("segmentation failed")
    assert len(cases["bravo"].warnings) == 2 and cases["alpha"].warnings == []
    assert cases["alpha"].images["dwi"].is_file() and cases["alpha"].images["adc"].is_file()


def test_page_and_case_files(review_page, batch_out):
    html = review_page.read_text(encoding="utf-8")
    assert not re.search(r'(src|href)="(https?:)?//', html), "the page must not load anything from the network"
    rows = {r["case"]: r for r in _rows(html)}
    assert rows["bravo"]["warnings"] and rows["delta"]["status"] == "failed" and rows["delta"]["data"] is None
    case_file = review_page.parent / rows["alpha"]["data"]
    text = case_file.read_text(encoding="utf-8")
    payload = json.loads(text[text.index(",") + 1: text.rindex(")")])
    n, h, w = payload["shape"]
    mask = np.frombuffer(zlib.decompress(base64.b64decode(payload["mask"])), np.uint8).reshape(n, h, w)
    dwi = np.frombuffer(zlib.decompress(base64.b64decode(payload["dwi"])), np.uint8).reshape(n, h, w)
    summary = json.loads((batch_out / "alpha.json").read_text(encoding="utf-8"))
    assert mask.sum() == summary["voxel_count"]  # no reduction for a small grid: every voxel kept
    assert dwi.max() == 255 and payload["adc"] and rows["alpha"]["thumb"].startswith("data:image/png;base64,")
    assert mask[payload["start"]].sum() == mask.sum(axis=(1, 2)).max()


def test_rebuild_replaces_the_case_files(batch_out, tmp_path):
    from infarctsam.review.page import build_review

    html = tmp_path / "r" / "review.html"
    build_review([batch_out], html)
    (html.parent / "review_files" / "stale.js").write_text("x", encoding="utf-8")
    page = build_review([batch_out], html)
    assert not (page.files / "stale.js").exists() and page.n_cases == 4 and page.n_warnings == 2
    assert sorted(p.name for p in html.parent.iterdir()) == ["review.html", "review_files"]


def test_decisions_read_back(tmp_path):
    good = tmp_path / "d.csv"
    good.write_text("case,review_decision,review_note,reviewed_at\nalpha,accept,,2024-01-01\n"
                    'bravo,needs-edit,"edge, posterior",2024-01-02\ncharlie,,,\n', encoding="utf-8")
    d = read_decisions(good)
    assert d == {"alpha": {"review_decision": "accept", "review_note": "", "reviewed_at": "2024-01-01"},
                 "bravo": {"review_decision": "needs-edit", "review_note": "edge, posterior",
                           "reviewed_at": "2024-01-02"}}
    bad = tmp_path / "b.csv"
    bad.write_text("case,review_decision\nalpha,maybe\n", encoding="utf-8")
    with pytest.raises(InputError, match="unknown decision 'maybe'"):
        read_decisions(bad)


def test_cli_builds_page_and_reports_bad_input(batch_out, tmp_path):
    out = tmp_path / "page.html"
    res = runner.invoke(app, ["review", str(batch_out), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "4 case(s), 2 with warnings" in res.stdout and out.is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(app, ["review", str(empty)])
    assert res.exit_code == 2 and res.stderr.startswith("error: no segmented case found")
    assert not (empty / "review.html").exists() and not (empty / "review_files").exists()
    res = runner.invoke(app, ["review", str(batch_out / "alpha.json")])
    assert res.exit_code == 2 and "--output" in res.stderr
    res = runner.invoke(app, ["review", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "not found" in res.stderr


def test_hostile_strings_stay_json_text_in_the_page(hostile_page):
    from html.parser import HTMLParser

    from review_hostile import HOSTILE_CASE, HOSTILE_ENGINE, HOSTILE_TITLE, HOSTILE_WARNINGS, HOSTILE_WEIGHTS

    html = hostile_page.read_text(encoding="utf-8")

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)

    parser = Tags()
    parser.feed(html)
    # the template's own elements only: three scripts (rows, configuration, code), no injected img/svg/iframe/b
    assert parser.tags.count("script") == 3 and not {"img", "svg", "iframe", "b"} & set(parser.tags)
    rows = {r["case"]: r for r in _rows(html)}
    row = rows[HOSTILE_CASE]
    assert row["warnings"][: len(HOSTILE_WARNINGS)] == HOSTILE_WARNINGS
    assert (row["engine"], row["weights"]) == (HOSTILE_ENGINE, HOSTILE_WEIGHTS)
    assert rows["bravo"]["qc"].endswith("javascript%3Awindow.__pwned%3D6")  # a relative file link, not a scheme
    config = json.loads(re.search(r'<script id="review-config" type="application/json">(.*?)</script>', html,
                                  re.S).group(1))
    assert config["title"] == HOSTILE_TITLE
