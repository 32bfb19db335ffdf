"""The web front end in a real browser: Debian's Chromium driven by Playwright against the real stack.

Every test fails on a console error, an uncaught exception or a Content-Security-Policy violation
in its page. Screenshots land in test-output/browser/ for a person to look at.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import OUTPUT, TINY_MODELS_SERVED, TOKEN, png_bytes
from tests.service.helpers import draw, submit, wait_for

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
# The machine is shared and often busy: give every expectation 30 s, not Playwright's default 5 s.
expect.set_options(timeout=30_000)

pytestmark = pytest.mark.slow
STACK_ENV = TINY_MODELS_SERVED  # the version trained from the page is activated

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SHOTS = OUTPUT / "browser"

# Chromium logs CSP violations as console errors too; this makes sure none goes unseen.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) =>
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline code"}`));
"""


@pytest.fixture(scope="module")
def playwright():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs it with apt-get install chromium")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as running:
        yield running


def launch(playwright, profile: Path, base_url: str, **options):
    """Chromium with a fresh profile (user data dir) of its own."""
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        base_url=base_url,
        viewport={"width": 1000, "height": 900},
        **options,
    )
    context.set_default_timeout(30_000)
    return context


@pytest.fixture(scope="module")
def browser(playwright, stack, tmp_path_factory):
    context = launch(playwright, tmp_path_factory.mktemp("chromium-profile"), stack.web_url)
    yield context
    context.close()


def open_tab(context):
    """A new tab and the list of what goes wrong in it (console errors, uncaught exceptions, CSP violations)."""
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
    tab.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    tab.add_init_script(REPORT_CSP_VIOLATIONS)
    return tab, problems


@pytest.fixture
def page(browser):
    """A new tab; the test fails if anything went wrong in it."""
    tab, problems = open_tab(browser)
    yield tab
    tab.close()
    if problems:
        pytest.fail("problems in the page:\n" + "\n".join(problems))


def cards(page):
    return page.locator("#results li.result")


def expect_label(card, label: int) -> None:
    expect(card).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(card.locator(".answer")).to_have_text(f"Digit {label}")


def test_drawn_digits_read_right(page):
    page.goto("/")
    submit_drawing = page.get_by_role("button", name="Recognise drawing")
    expect(submit_drawing).to_be_disabled()

    # A 1, then a stray stroke across it taken back with Undo: what is sent must be the 1 alone.
    draw(page, [[(140, 40), (140, 240)]])
    draw(page, [[(60, 140), (220, 140)]])
    page.get_by_role("button", name="Undo").click()
    submit_drawing.click()
    expect_label(cards(page).first, 1)
    expect(submit_drawing).to_be_disabled()  # the pad was cleared for the next digit

    # A 7 as two lines, with a wider pen.
    page.get_by_label("Pen width").fill("24")
    draw(page, [[(60, 50), (220, 50)], [(220, 50), (120, 245)]])
    submit_drawing.click()
    expect(cards(page)).to_have_count(2)
    newest = cards(page).first
    expect_label(newest, 7)

    # Each card: 10 probability bars with the label's highlighted, the model version, the 28x28 input.
    expect(newest.locator("svg.probabilities g.bar")).to_have_count(10)
    expect(newest.locator("g.bar.top text")).to_have_text("7")
    expect(newest.locator(".version")).to_have_text("model v1")
    seen = newest.locator("img.seen")
    assert seen.get_attribute("src").startswith("data:image/png;base64,")
    assert seen.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [28, 28]
    page.screenshot(path=SHOTS / "home-drawn.png", full_page=True)


def mnist_files(mnist, tmp_path: Path, labels: list[int]) -> list[Path]:
    """Genuine MNIST test images saved as PNG scans would be: black ink on white."""
    paths = []
    for label in labels:
        index = int(np.flatnonzero(mnist.y_test == label)[0])
        path = tmp_path / f"mnist-test-{index}.png"
        path.write_bytes(png_bytes(mnist.x_test[index], invert=True))
        paths.append(path)
    return paths


def test_three_uploaded_mnist_images_read_right(page, mnist, tmp_path):
    labels = [2, 5, 9]
    page.goto("/")
    page.get_by_label("Image files").set_input_files(mnist_files(mnist, tmp_path, labels))
    expect(page.locator("#chosen")).to_contain_text("3 chosen")
    page.get_by_role("button", name="Recognise", exact=True).click()

    expect(cards(page)).to_have_count(3)
    for card, label in zip(cards(page).all(), labels, strict=True):  # the cards keep the upload order
        expect_label(card, label)
        assert card.locator("img.sent").get_attribute("src").startswith("blob:")
    page.screenshot(path=SHOTS / "home-uploads.png", full_page=True)


def test_a_result_is_marked_right_or_corrected_and_the_models_page_shows_it(page, stack, mnist, tmp_path):
    requests.delete(f"{stack.web_url}/api/v1/feedback", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    page.goto("/")
    page.get_by_label("Image files").set_input_files(mnist_files(mnist, tmp_path, [3, 6]))
    page.get_by_role("button", name="Recognise", exact=True).click()
    expect(cards(page)).to_have_count(2)
    three, six = cards(page).all()
    expect_label(three, 3)
    expect_label(six, 6)
    three.get_by_role("button", name="right ✓").click()
    expect(three.locator(".feedback-said")).to_have_text("thanks: confirmed")
    six.get_by_label("The digit it really is").select_option("8")
    expect(six.locator(".feedback-said")).to_have_text("thanks: kept as a 8")
    kept = requests.get(f"{stack.web_url}/api/v1/feedback", timeout=10).json()
    assert kept["total"] == 2 and kept["confusion"][3][3] == 1 and kept["confusion"][8][6] == 1

    page.goto("/models")
    expect(page.locator("#feedback-summary")).to_have_text("2 corrections, 1 of them where the model was wrong")
    table = page.get_by_label("Confusion table of the corrections")
    expect(table.locator("tbody tr").nth(8).locator("td").nth(6)).to_have_text("1")
    page.screenshot(path=SHOTS / "models-corrections.png", full_page=True)


def test_dropped_files_go_through_the_same_form(page, mnist, tmp_path):
    (path,) = mnist_files(mnist, tmp_path, [4])
    page.goto("/")
    dropped = page.evaluate_handle(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/png" }));
            return transfer;
        }""",
        [path.name, base64.b64encode(path.read_bytes()).decode()],
    )
    page.locator("#dropzone").dispatch_event("drop", {"dataTransfer": dropped})
    expect(page.locator("#chosen")).to_contain_text(f"1 chosen: {path.name}")
    page.get_by_role("button", name="Recognise", exact=True).click()
    expect_label(cards(page).first, 4)


def test_the_upload_form_works_without_javascript(playwright, stack, mnist, tmp_path):
    """The plain form post lands on a job page that refreshes itself until the label is in."""
    context = launch(playwright, tmp_path / "profile", stack.web_url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/")
        expect(page.locator("#draw-panel")).to_be_hidden()
        page.get_by_label("Image files").set_input_files(mnist_files(mnist, tmp_path, [6]))
        page.get_by_role("button", name="Recognise", exact=True).click()
        expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f]{32}$"))
        expect(page.locator("li.result")).to_have_attribute("data-status", "succeeded", timeout=60_000)
        expect(page.locator(".answer")).to_have_text("Digit 6")
        page.screenshot(path=SHOTS / "job-without-javascript.png", full_page=True)
    finally:
        context.close()


def test_jobs_page_lists_recent_jobs_live(page, stack, mnist):
    good = png_bytes(mnist.x_test[0])  # a 7
    truncated = good[:60]  # a readable PNG header, but no pixels: the worker fails the job
    good_id, bad_id = submit(stack.web_url, [good, truncated])
    for job_id in (good_id, bad_id):
        wait_for(stack.web_url, job_id)

    page.goto("/train")  # the recent jobs are the admin's: the token typed on the Train page is sent
    page.evaluate(f"sessionStorage.setItem('digits.apiToken', {TOKEN!r})")
    page.goto("/jobs")
    rows = page.locator("#job-rows tr")
    good_row = rows.filter(has=page.locator(f'a[href="/jobs/{good_id}"]'))
    bad_row = rows.filter(has=page.locator(f'a[href="/jobs/{bad_id}"]'))
    expect(good_row.locator(".status")).to_have_text("succeeded")
    expect(good_row.locator("td").nth(3)).to_contain_text("7")
    expect(good_row.locator("td.num")).to_have_text(re.compile(r"^\d+\.\d+ s$"))
    expect(bad_row.locator(".status")).to_have_text("failed")
    expect(bad_row.locator(".reason")).not_to_be_empty()

    # A job submitted elsewhere shows up without reloading the page.
    (new_id,) = submit(stack.web_url, [png_bytes(mnist.x_test[1])])
    expect(rows.first.locator("a")).to_have_attribute("href", f"/jobs/{new_id}", timeout=15_000)
    page.screenshot(path=SHOTS / "jobs.png", full_page=True)


@pytest.mark.parametrize("path", ["/", "/jobs", "/train", "/models"])
def test_pages_fit_a_phone_screen(page, path):
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(path)
    if path == "/models":
        expect(page.locator("#models-status")).to_contain_text("serving")
    page.wait_for_timeout(500)  # scripts have rendered
    page.screenshot(path=SHOTS / f"phone-{path.strip('/') or 'home'}.png", full_page=True)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{path} scrolls sideways by {overflow} px on a phone"


def progress_value(page) -> float:
    return float(page.locator("#run-progress").get_attribute("value") or 0)


def test_training_from_the_page_then_activate_and_roll_back(page, browser, stack):
    page.goto("/train")
    page.get_by_label("API token").fill(TOKEN)
    expect(page.get_by_label("Recipe")).to_have_value("fast")  # what a job without parameters trains
    page.get_by_label("Architecture").select_option("seed")
    # Long enough (a few seconds) that progress, written every second, shows between start and end.
    page.get_by_label("Epochs").fill("4")
    page.get_by_label("Batch size").fill("32")
    page.get_by_label("Train on the first N images").fill("2000")
    page.get_by_label("Augment").uncheck()
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#run")).to_be_visible()
    status = page.locator("#run-status")
    expect(status).to_contain_text("running", timeout=120_000)

    # A prediction that waits (its worker paused for a moment: training does not hold predictions
    # up) must not change its card's size when its answer arrives (space is reserved while polling).
    other, other_problems = open_tab(browser)
    other.goto("/")
    draw(other, [[(140, 40), (140, 240)]])
    worker = stack.processes["w1"].pid
    os.killpg(worker, signal.SIGSTOP)
    try:
        other.get_by_role("button", name="Recognise drawing").click()
        waiting = other.locator("#results li.result").first
        expect(waiting).to_have_attribute("data-status", re.compile("queued|running"))
        height_waiting = waiting.bounding_box()["height"]
    finally:
        os.killpg(worker, signal.SIGCONT)

    seen, started = set(), time.monotonic()
    while not re.match("succeeded|failed|cancelled", status.inner_text()):
        assert time.monotonic() - started < 300, f"training did not finish: {status.inner_text()}"
        seen.add(progress_value(page))
        if 0.3 < progress_value(page) < 0.9 and not (SHOTS / "train-running.png").exists():
            page.screenshot(path=SHOTS / "train-running.png", full_page=True)
        page.wait_for_timeout(200)
    assert status.inner_text().startswith("succeeded"), status.inner_text()
    partial = sorted(v for v in seen if 0 < v < 1)
    assert partial, f"the progress bar never showed a value between 0 and 1: {sorted(seen)}"
    assert progress_value(page) == 1
    expect(page.locator("#loss-chart polyline").first).to_have_attribute("points", re.compile(r"\d.* \d"))
    result = page.locator("#run-result")
    expect(result).to_contain_text("Stored as model v2")
    page.screenshot(path=SHOTS / "train-done.png", full_page=True)

    expect_label(waiting, 1)
    assert abs(waiting.bounding_box()["height"] - height_waiting) < 1
    other.close()
    assert not other_problems

    # The new version on the models page, activated and rolled back with the token from this tab.
    result.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/models#model-2$"))
    version_2 = page.locator("#model-2")
    expect(version_2.locator("h2")).to_have_text("Version 2")
    expect(version_2.locator("table.heatmap tbody tr")).to_have_count(10)
    expect(version_2.locator(".mistake-grid img")).to_have_count(25)
    expect(page.locator("#model-1 .badge")).to_have_text("serving")
    expect(page.locator("article.model").first).to_have_id("model-1")  # the served version first
    # v2 (a tiny model) beside the served one: worse on MNIST, so activating it asks first.
    expect(version_2.locator(".comparison")).to_contain_text("Against v1 (serving): MNIST accuracy −")
    expect(version_2.locator(".comparison .worse").first).to_contain_text("MNIST accuracy")
    version_2.get_by_role("button", name="Activate v2").click()
    expect(version_2.locator(".confirm")).to_contain_text("v2 is worse than v1")
    version_2.get_by_role("button", name="Keep v1").click()
    assert requests.get(f"{stack.web_url}/api/v1/models", timeout=10).json()["active_version"] == 1
    version_2.get_by_role("button", name="Activate v2").click()
    version_2.get_by_role("button", name="Activate v2 anyway").click()
    expect(version_2.locator(".badge")).to_have_text("serving")
    expect(page.locator("article.model").first).to_have_id("model-2")
    assert requests.get(f"{stack.web_url}/api/v1/models", timeout=10).json()["active_version"] == 2
    page.screenshot(path=SHOTS / "models.png", full_page=True)
    page.locator("#model-1").get_by_role("button", name="Roll back to v1").click()
    expect(page.locator("#model-1 .badge")).to_have_text("serving")
    assert requests.get(f"{stack.web_url}/api/v1/models", timeout=10).json()["active_version"] == 1


def test_a_training_job_can_be_cancelled_from_the_page(page, stack):
    versions_before = len(requests.get(f"{stack.web_url}/api/v1/models", timeout=10).json()["models"])
    page.goto("/train")
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_label("Architecture").select_option("seed")
    page.get_by_label("Epochs").fill("20")
    page.get_by_label("Train on the first N images").fill("2000")
    page.get_by_role("button", name="Start training").click()
    status = page.locator("#run-status")
    expect(status).to_contain_text("epoch", timeout=120_000)
    page.get_by_role("button", name="Cancel training").click()
    expect(status).to_have_text(re.compile("^cancelled"), timeout=60_000)
    expect(page.get_by_role("button", name="Cancel training")).to_be_hidden()
    assert 0 < progress_value(page) < 1
    assert len(requests.get(f"{stack.web_url}/api/v1/models", timeout=10).json()["models"]) == versions_before


def forty_two(mnist) -> bytes:
    """ "42" as one scan: MNIST's first test 4 and first test 2 side by side, dark ink on white."""
    strip = np.zeros((48, 100), np.uint8)
    strip[10:38, 10:38] = mnist.x_test[int(np.flatnonzero(mnist.y_test == 4)[0])]
    strip[10:38, 58:86] = mnist.x_test[int(np.flatnonzero(mnist.y_test == 2)[0])]
    return png_bytes(np.asarray(Image.fromarray(strip).resize((400, 192), Image.Resampling.BILINEAR)), invert=True)


def test_a_number_uploaded_as_one_digit_gets_a_hint_and_reads_as_a_number_in_one_click(page, mnist, tmp_path):
    path = tmp_path / "forty-two.png"
    path.write_bytes(forty_two(mnist))
    page.goto("/")
    expect(page.get_by_label("Each image holds")).to_have_value("digit")  # the default: see docs/model.md
    page.get_by_label("Image files").set_input_files([path])
    page.get_by_role("button", name="Recognise", exact=True).click()
    card = cards(page).first
    expect(card).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(card.locator(".hint")).to_contain_text("2 digits")
    expect(card.locator(".hint")).to_contain_text("42")
    card.get_by_role("button", name="Read as a number").click()
    expect(cards(page)).to_have_count(2)
    number = cards(page).first
    expect(number).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(number.locator(".number-text")).to_have_text("42")
    page.screenshot(path=SHOTS / "home-read-as-number.png", full_page=True)


def test_five_good_images_and_a_text_file_give_five_results_and_one_card_naming_it(browser, mnist, tmp_path):
    tab, problems = open_tab(browser)
    labels = [0, 1, 2, 3, 4]
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture of a digit\n" * 4)
    tab.goto("/")
    tab.get_by_label("Image files").set_input_files([*mnist_files(mnist, tmp_path, labels[:3]), notes,
                                                     *mnist_files(mnist, tmp_path, labels[3:])])  # fmt: skip
    tab.get_by_role("button", name="Recognise", exact=True).click()
    expect(cards(tab)).to_have_count(6)
    shown = cards(tab).all()
    refused = shown[3]
    expect(refused).to_have_attribute("data-status", "refused")
    expect(refused).to_contain_text("notes.txt")
    expect(refused.locator(".answer")).to_contain_text("not an image")
    for card, label in zip(shown[:3] + shown[4:], labels, strict=True):  # in the order chosen
        expect_label(card, label)
    expect(tab.locator("#submit-error")).to_be_empty()
    tab.screenshot(path=SHOTS / "home-one-bad-file.png", full_page=True)
    tab.close()
    # The one refusal the page acts on is Chromium's console note of the 415; nothing else went wrong.
    unexpected = [p for p in problems if "status of 415" not in p]
    assert not unexpected, "problems in the page:\n" + "\n".join(unexpected)
