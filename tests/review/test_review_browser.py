"""The review page in a real browser: Debian's chromium driven by playwright (never a downloaded browser).

Covered: the page loads with no console error, the table sorts (warnings first by default, then by a clicked
column), a slice change changes the canvas pixels, the mask toggle changes them too, a case being loaded is never
shown as the previous one, and a decision is stored in localStorage (surviving a reload) and exported as a CSV that
:func:`read_decisions` reads back.
"""

from __future__ import annotations

import shutil

import pytest

from infarctsam.review.decisions import read_decisions

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian package 'chromium')")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) is not installed")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser, review_page):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
          else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    pg.goto(review_page.as_uri())
    pg.wait_for_selector("#cohort tbody tr")
    pg.problems = problems
    yield pg
    context.close()


def _cases(pg) -> list[str]:
    return pg.eval_on_selector_all("#cohort tbody tr", "rows => rows.map(r => r.getAttribute('data-case'))")


def _pixels(pg) -> str:
    return pg.evaluate("() => { const c = document.getElementById('dwi-canvas');"
                       " return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).join(','); }")


def _open(pg, case: str) -> None:
    """Open a case and wait until its own images are drawn (not the previous case's: a reload while its slice script
    is still loading would abort that request)."""
    pg.click(f"#cohort tbody tr[data-case='{case}']")
    _wait_shown(pg, case)


def _wait_shown(pg, case: str) -> None:
    """Wait until the viewer has drawn ``case``'s own images."""
    pg.wait_for_function("c => document.getElementById('viewer').dataset.shown === c", arg=case)
    assert pg.text_content("#slice-label").startswith("slice")


def test_loads_without_console_errors_and_sorts(page):
    rows = _cases(page)
    assert len(rows) == 4
    assert set(rows[:2]) == {"bravo", "delta"}, rows  # cases with warnings first
    page.click("th[data-key='case']")
    assert _cases(page) == ["alpha", "bravo", "charlie", "delta"]
    page.click("th[data-key='case']")
    assert _cases(page) == ["delta", "charlie", "bravo", "alpha"]
    page.click("th[data-key='volume_ml']")
    vols = page.eval_on_selector_all("#cohort tbody tr td:nth-child(4)", "t => t.map(x => x.textContent)")
    numbers = [float(v) for v in vols if v]
    assert numbers == sorted(numbers) and vols[-1] == ""  # the failed case has no volume: last
    page.fill("#filter", "char")
    assert _cases(page) == ["charlie"]
    page.fill("#filter", "")
    _open(page, "alpha")
    assert page.problems == []


def test_slice_change_and_mask_toggle_change_pixels(page):
    _open(page, "alpha")
    first = _pixels(page)
    label = page.text_content("#slice-label")
    start = int(label.split()[1])  # "slice K / N (...)"
    key, back = ("ArrowDown", -120) if start > 1 else ("ArrowUp", 120)  # wheel up (negative) = next slice
    page.keyboard.press(key)
    second = _pixels(page)
    assert page.text_content("#slice-label") != label and second != first
    page.mouse.move(*_centre(page, "#dwi-canvas"))
    page.mouse.wheel(0, back)  # and back with the wheel
    page.wait_for_function(f"() => document.getElementById('slice-label').textContent === {label!r}")
    assert _pixels(page) == first
    page.keyboard.press("m")  # mask off: the lesion slice loses its red
    assert _pixels(page) != first
    assert page.is_visible("#adc-canvas") and page.text_content(".frame .ori.left") == "R"
    assert page.problems == []


def _centre(pg, selector: str) -> tuple[float, float]:
    box = pg.locator(selector).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_switching_case_never_shows_the_previous_case_as_loaded(page):
    _open(page, "bravo")
    # the click and the read in one synchronous script: the new case's slice script cannot have arrived in between
    shown, label = page.evaluate("""() => {
        document.querySelector("#cohort tbody tr[data-case='alpha']").click();
        return [document.getElementById('viewer').dataset.shown || null,
                document.getElementById('slice-label').textContent];
    }""")
    assert shown is None and label == "loading alpha\u2026"
    _wait_shown(page, "alpha")
    _open(page, "bravo")  # cached: drawn at once, no loading label
    assert page.problems == []


def test_decision_is_stored_and_exported(page, tmp_path):
    _open(page, "bravo")
    page.fill("#note", "posterior edge missed, \"recheck\"")
    page.click("#decision button[data-decision='needs-edit']")
    _open(page, "alpha")
    page.keyboard.press("1")  # accept
    stored = page.evaluate("() => JSON.parse(localStorage.getItem(Object.keys(localStorage)[0]))")
    assert stored["bravo"]["decision"] == "needs-edit" and stored["alpha"]["decision"] == "accept"
    page.reload()
    page.wait_for_selector("#cohort tbody tr")
    badges = page.eval_on_selector_all("#cohort tbody .badge", "b => b.map(x => x.textContent).sort()")
    assert badges == ["accept", "needs-edit"]
    with page.expect_download() as info:
        page.click("#export")
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert path.name == "infarctsam_review.csv"
    got = read_decisions(path)
    assert got["bravo"]["review_decision"] == "needs-edit"
    assert got["bravo"]["review_note"] == "posterior edge missed, \"recheck\""
    assert got["alpha"]["review_decision"] == "accept" and set(got) == {"alpha", "bravo"}
    assert page.problems == []


def test_hostile_names_and_warnings_are_shown_as_text_and_never_run(browser, hostile_page):
    from review_hostile import HOSTILE_CASE, HOSTILE_ENGINE, HOSTILE_TITLE, HOSTILE_WARNINGS, HOSTILE_WEIGHTS

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    pg.goto(hostile_page.as_uri())
    pg.wait_for_selector("#cohort tbody tr")
    row = pg.locator("#cohort tbody tr").filter(has_text=HOSTILE_CASE)
    assert row.count() == 1
    table = pg.text_content("#cohort tbody")
    for text in (HOSTILE_CASE, HOSTILE_ENGINE, HOSTILE_WEIGHTS, HOSTILE_WARNINGS[0]):
        assert text in table, text  # shown literally
    row.hover()
    row.click()
    _wait_shown(pg, HOSTILE_CASE)
    assert pg.text_content("#case-title").startswith(HOSTILE_CASE)
    shown = pg.eval_on_selector_all("#case-warnings li", "li => li.map(x => x.textContent)")
    assert shown[: len(HOSTILE_WARNINGS)] == HOSTILE_WARNINGS
    pg.hover("#case-warnings")
    _open(pg, "bravo")
    assert pg.get_attribute("#qc-link", "href").startswith("../") and \
        pg.evaluate("() => document.getElementById('qc-link').protocol") == "file:"
    assert pg.title().startswith(HOSTILE_TITLE) and pg.text_content("#title") == HOSTILE_TITLE
    # nothing injected ran or was created: no marker, no element from the strings
    assert pg.evaluate("() => window.__pwned") is None
    assert pg.evaluate("() => document.querySelectorAll('svg, iframe, #cohort b, img[src=\"x\"]').length") == 0
    assert problems == []
    context.close()


@pytest.fixture(scope="module")
def crowded_page(batch_out, tmp_path_factory):
    """A review page of 20 cases, each with two long warnings and a long weights name (as real batches have)."""
    import json

    from infarctsam.review.page import build_review

    out = tmp_path_factory.mktemp("crowded") / "out"
    out.mkdir()
    src = json.loads((batch_out / "alpha.json").read_text(encoding="utf-8"))
    for i in range(20):
        name = f"case{i:02d}"
        obj = json.loads(json.dumps(src))
        obj["case"] = name
        obj["outputs"] = {}
        for key, file in src["outputs"].items():
            shutil.copy(batch_out / file, out / file.replace("alpha", name))
            obj["outputs"][key] = file.replace("alpha", name)
        obj["warnings"] = ["bright voxels at the skull base on both sides: susceptibility artefact? " * 3,
                           "lesion volume implausible for the brain volume"]
        obj["weights"] = "infarctsam-default (sha256 " + "0123456789abcdef" * 4 + ")"
        (out / f"{name}.json").write_text(json.dumps(obj), encoding="utf-8")
    html = out.parent / "review.html"
    build_review([out], html, title="crowded cohort")
    return html


def test_a_screen_at_1400_px_holds_many_cases_and_no_column_is_cut(browser, crowded_page):
    """At 1,400 x 900 px, rows with long warnings stay one line high (the whole text is in the tooltip and the
    viewer), so at least 12 cases show at once, and the table fits its pane: no column is cut off."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    try:
        pg.goto(crowded_page.as_uri())
        pg.wait_for_selector("#cohort tbody tr")
        visible = pg.evaluate("""() => { const pane = document.getElementById('table-pane').getBoundingClientRect();
            return Array.from(document.querySelectorAll('#cohort tbody tr')).filter(r => {
              const b = r.getBoundingClientRect(); return b.top >= pane.top && b.bottom <= pane.bottom; }).length; }""")
        assert visible >= 12, visible
        overflow = pg.evaluate("() => { const p = document.getElementById('table-pane');"
                               " return p.scrollWidth - p.clientWidth; }")
        assert overflow <= 0, f"the table is {overflow} px wider than its pane"
        warn = pg.get_attribute("#cohort tbody tr td.warn", "title")
        assert warn.startswith("2: bright voxels") and warn.endswith("brain volume")  # the whole text, on hover
    finally:
        context.close()


def test_a_toggle_is_offered_only_for_what_the_case_has(page):
    """The phantom cases have an ADC and no reference: the ADC toggle shows, the reference toggle does not (a
    DWI-only case showed both, ticked)."""
    _open(page, "alpha")
    assert page.is_hidden("#show-ref") and page.is_visible("#show-adc")
