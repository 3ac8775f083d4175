"""The web page in headless Chromium: start a run, watch three agent panels fill, see the winner.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium
chromium-driver``); skipped with that reason when they are missing. Saves a screenshot
to ``artifacts/api_web_page.png``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.support.fakes.agents import study_agent

pytestmark = pytest.mark.timeout(180)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts"

if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
    pytest.skip(
        "headless browser test needs Debian's chromium and chromium-driver "
        "(apt-get install -y chromium chromium-driver)",
        allow_module_level=True,
    )


@pytest.fixture
def browser(tmp_path):
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,1000",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_started_from_the_page_shows_three_agents_and_the_winner(api, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    answers = {
        "m1": "Canberra is the capital of Australia.",
        "m2": "The capital of Australia is Canberra, a planned city.",
        "m3": "Australia's capital city is Canberra, in the ACT.",
    }
    for model, mine in answers.items():
        api.fake.behave(
            model,
            study_agent(mine, "agent2", presentation="Canberra — the agreed answer.", tokens=25,
                        token_delay=0.02),
        )  # fmt: skip

    browser.get(api.url + "/")
    token = browser.find_element(By.ID, "token")
    token.send_keys("alice-token")
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", token)
    wait_for(lambda: browser.execute_script(
        "return [...document.querySelectorAll('#team option')].some(o => o.value === 'trio')"),
        what="the team list")  # fmt: skip
    Select(browser.find_element(By.ID, "team")).select_by_value("trio")
    browser.find_element(By.ID, "question").send_keys("What is the capital of Australia?")
    browser.find_element(By.ID, "start").click()

    def view():  # one snapshot of the page, read in one script (the DOM keeps changing)
        return browser.execute_script(
            "return {streams: Object.fromEntries([...document.querySelectorAll('.agent-panel')]"
            ".map(p => [p.dataset.label, p.querySelector('.stream').textContent])),"
            " winner: document.getElementById('winner').textContent}"
        )

    # All three panels fill in while the run is still going (no winner yet).
    filling = wait_for(
        lambda: (
            (v := view())
            and len(v["streams"]) == 3
            and all(v["streams"].values())
            and not v["winner"]
            and v["streams"]
        ),
        what="three agent panels streaming",
    )
    assert set(filling) == {"agent1", "agent2", "agent3"}

    wait_for(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-run-status"),
             what="the run to finish")  # fmt: skip
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-run-status") == "completed"
    assert browser.find_element(By.ID, "winner").text.startswith("agent2")
    assert browser.find_element(By.ID, "final-answer").text.startswith(
        "Canberra — the agreed answer."
    )
    winner = browser.find_element(By.CSS_SELECTOR, ".agent-panel.winner")
    assert winner.get_attribute("data-label") == "agent2"
    logs = " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".log li"))
    assert "answer agent1.1 accepted" in logs and "votes for agent2" in logs
    # The past-runs list shows it too.
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#runs li"), what="past runs")

    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "api_web_page.png"))
    assert (ARTIFACTS / "api_web_page.png").stat().st_size > 10_000


def test_the_page_shows_an_answer_being_written_and_the_votes(api, browser):
    """The answer travels inside the new_answer call: it streams into the panel anyway."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    long_answer = " ".join(f"Canberra{i}" for i in range(60)) + " THE-END"
    answers = {"m1": "Canberra is the capital.", "m2": long_answer, "m3": "It is Canberra."}
    for model, mine in answers.items():
        api.fake.behave(model, study_agent(mine, "agent2", presentation="Canberra.",
                                           token_delay=0.03))  # fmt: skip

    browser.get(api.url + "/")
    token = browser.find_element(By.ID, "token")
    token.send_keys("alice-token")
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", token)
    wait_for(lambda: browser.execute_script(
        "return [...document.querySelectorAll('#team option')].some(o => o.value === 'trio')"),
        what="the team list")  # fmt: skip
    Select(browser.find_element(By.ID, "team")).select_by_value("trio")
    browser.find_element(By.ID, "question").send_keys("What is the capital of Australia?")
    browser.find_element(By.ID, "start").click()

    def agent2() -> str:
        return browser.execute_script(
            "const p = document.querySelector('.agent-panel[data-label=agent2] .stream');"
            "return p ? p.textContent : '';"
        )

    # Part of the answer is on the page while the rest is still being generated.
    partial = wait_for(
        lambda: (text := agent2()) and "✎ answer:" in text and "Canberra5" in text
        and "THE-END" not in text and text,
        what="agent2's answer streaming in",
    )  # fmt: skip
    assert "answer agent2.1 accepted" not in partial
    done = wait_for(lambda: (text := agent2()) and "☑ voted for agent2" in text and text,
                    what="agent2's vote line")  # fmt: skip
    assert long_answer in done.replace("\n", " ") and "✓ answer agent2.1 accepted" in done
    wait_for(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-run-status"),
             what="the run to finish")  # fmt: skip
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-run-status") == "completed"


def test_each_agent_panel_shows_its_tokens_and_cost(api, browser):
    """A priced model's agent shows its dollars (the sum of its calls' token_usage
    events, the same as the run view's), a model without a price shows $0."""
    from selenium.webdriver.common.by import By

    priced = "gpt-4o-mini"  # in litellm's price map
    api.fake.behave(priced, study_agent("Canberra.", "agent1", presentation="Canberra."))
    api.fake.behave("m2", study_agent("It is Canberra.", "agent1"))
    with api.client() as client:
        created = client.post(
            "/v1/runs",
            json={"question": "Capital of Australia?", "config": api.config([priced, "m2"])},
            headers={"Authorization": "Bearer alice-token"},
        )
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        run = wait_for(
            lambda: (r := client.get(f"/v1/runs/{run_id}").json())["status"] == "completed" and r,
            what="the run to finish",
        )
    agents = {a["label"]: a for a in run["agents"]}
    assert agents["agent1"]["cost_usd"] > 0 and agents["agent2"]["cost_usd"] == 0

    browser.get(api.url + "/")
    token = browser.find_element(By.ID, "token")
    token.send_keys("alice-token")
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", token)
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f"#runs li[data-run='{run_id}']"),
             what="the run in the list")[0].click()  # fmt: skip
    wait_for(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-run-status"),
             what="the run's events")  # fmt: skip

    panels = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('.agent-panel')].map(p =>"
        " [p.dataset.label, {cost: p.dataset.costUsd, tokens: p.dataset.tokens,"
        " text: p.querySelector('.usage').textContent}]))"
    )
    one, two = panels["agent1"], panels["agent2"]
    # The run view rounds to micro-dollars.
    assert float(one["cost"]) == pytest.approx(agents["agent1"]["cost_usd"], abs=5e-7)
    assert one["text"] == f"{one['tokens']} tok · ${float(one['cost']):.4f}"
    assert int(two["tokens"]) > 0 and two["text"] == f"{two['tokens']} tok · $0"
    assert (
        int(one["tokens"])
        == agents["agent1"]["prompt_tokens"] + agents["agent1"]["completion_tokens"]
    )
