"""The web page shows a run's generated image (headless Chromium, real stack).

Skipped with the web page test's reason when Debian's chromium is missing. Saves a
screenshot to ``artifacts/api_files_page.png``.
"""

from __future__ import annotations

import pytest

from tests.integration.api.test_api_files import api, paint  # noqa: F401 - the fixture
from tests.integration.api.test_api_web_page import ARTIFACTS, browser, wait_for  # noqa: F401
from tests.integration.gateway.test_media import png
from tests.support.api_stack import ALICE

pytestmark = pytest.mark.timeout(180)


def test_the_page_shows_the_generated_image_of_a_run(api, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    picture = png(320, 200, seed=11)
    with api.client(ALICE) as alice:
        run_id = paint(api, alice, "gpt-4o", picture, "art/fox.png")

    browser.get(api.url + "/")
    token = browser.find_element(By.ID, "token")
    token.send_keys("alice-token")
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", token)
    listed = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f"#runs li[data-run='{run_id}']"),
                      what="the run in the past-runs list")  # fmt: skip
    listed[0].click()
    wait_for(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-files"),
             what="the run's files")  # fmt: skip

    assert browser.find_elements(By.CSS_SELECTOR, "#files figure img"), "no image on the page"
    wait_for(lambda: browser.execute_script(
        "const i = document.querySelector('#files img'); return i.complete && i.naturalWidth"),
        what="the image to decode")  # fmt: skip
    shown = browser.execute_script(
        "const img = document.querySelector('#files figure img');"
        "return {path: img.closest('figure').dataset.path, width: img.naturalWidth,"
        " height: img.naturalHeight, caption: img.closest('figure').textContent};"
    )
    # The browser decoded the very PNG the model generated (its size is in the file).
    assert shown["path"] == "agent1/art/fox.png"
    assert (shown["width"], shown["height"]) == (320, 200)
    assert shown["caption"] == f"agent1/art/fox.png ({len(picture) / 1024:.1f} KB)"
    assert browser.find_element(By.ID, "final-answer").text == "The fox: agent1/art/fox.png"

    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "api_files_page.png"))
