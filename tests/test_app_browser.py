"""The web demo as a person uses it: `mqt-llava app` started in a real subprocess on 127.0.0.1, driven in headless
Chromium through Selenium and Debian's chromedriver, and the Space entry `spaces/app.py` served over HTTP.

`.ci/run` installs Chromium and its driver; elsewhere the browser tests skip when they are missing (under CI=true
they fail instead, so CI cannot pass them silently). Set MQT_LLAVA_APP_SCREENSHOT=PATH to also copy the screenshot
the first test keeps to PATH (how `docs/app.png` is made).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from mqt_llava.demo.cli import SHIPPED_MODEL

gradio = pytest.importorskip("gradio", reason="the app's tests need the app extra: pip install -e '.[dev,app]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium (the dev extra)")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
STARTUP_S = 240  # the machine may be busy: importing torch and gradio and loading the model can take a while
ANSWER_S = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_page(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the app exited with {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the app did not answer at {url} within {STARTUP_S} s:\n{log.read_text()[-4000:]}")


def _serve(command: list[str], tmp_path: Path, env_extra: dict[str, str] | None = None):
    """Starts `command` (a Gradio server) with its output in tmp_path/server.log; returns (process, log)."""
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False"}
    env.update(env_extra or {})
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    return server, log


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=20)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """`mqt-llava app` on the shipped model, on a free port of 127.0.0.1; stopped by its pid afterwards."""
    if not (SHIPPED_MODEL / "config.json").is_file():
        pytest.skip("the shipped model is not built")
    tmp_path = tmp_path_factory.mktemp("app_server")
    port = _free_port()
    server, log = _serve(["mqt-llava", "app", "--host", "127.0.0.1", "--port", str(port)], tmp_path)
    try:
        _wait_for_page(f"http://127.0.0.1:{port}/", server, log)
        yield f"http://127.0.0.1:{port}/"
    finally:
        _stop(server)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Debian's chromedriver (no driver or browser download)."""
    if not (CHROMIUM and CHROMEDRIVER):
        reason = "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run must install them")
        pytest.skip(reason)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _wait_for_text(driver, element_id: str, text: str) -> str:
    """The text of element `element_id` once it contains `text` (fails after ANSWER_S with what it showed)."""
    try:
        WebDriverWait(driver, ANSWER_S, poll_frequency=0.2).until(lambda d: text in d.find_element(By.ID, element_id).text)
    except Exception as error:
        shown = driver.find_element(By.ID, element_id).text if driver.find_elements(By.ID, element_id) else "(absent)"
        raise AssertionError(f"#{element_id} never showed {text!r}; it shows {shown!r}") from error
    return driver.find_element(By.ID, element_id).text


def _type(driver, selector: str, text: str) -> None:
    field = driver.find_element(By.CSS_SELECTOR, selector)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(text or Keys.DELETE)  # typing over the selection: a number field is never empty on the way
    field.send_keys(Keys.TAB)


def _overlay_loaded(driver, index: int) -> bool:
    """Whether panel `index` shows its overlay (scrolled into view first: the page may load images lazily)."""
    script = "const img = document.querySelector(arguments[0]); if (!img) return false; img.scrollIntoView({block: 'center'}); return img.complete && img.naturalWidth > 0;"
    return driver.execute_script(script, f"#overlay-{index} img")


def _set_first_tokens_and_wait_for_redraw(driver, value: str) -> None:
    overlay = "#overlay-1 img"
    before = driver.find_element(By.CSS_SELECTOR, overlay).get_attribute("src")
    _type(driver, "#first-tokens input[type=number]", value)
    assert driver.find_element(By.CSS_SELECTOR, "#first-tokens input[type=range]").get_attribute("value") == value
    WebDriverWait(driver, ANSWER_S).until(
        lambda d: d.find_element(By.CSS_SELECTOR, overlay).get_attribute("src") != before,
        message=f"the overlay was not redrawn for {value} first tokens",
    )
    WebDriverWait(driver, ANSWER_S).until(lambda d: _overlay_loaded(d, 1), message="the redrawn overlay did not load")


def _fit_window_to_page(driver, width: int = 1400) -> None:
    """Makes the window as tall as the page and scrolls to its top, so that a screenshot shows all of it (the page
    may reflow once); nothing keeps the focus."""
    driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
    for _ in range(5):
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, height + 100)
        time.sleep(0.5)
        if driver.execute_script("return document.documentElement.scrollHeight") <= height:
            return


def _expected(scene, budgets):
    """The shipped model's answers and FLOPs at each budget, computed here without the server."""
    from mqt_llava.app.compare import Comparer
    from mqt_llava.app.session import AppSession

    comparer = Comparer(AppSession.load(SHIPPED_MODEL, device="cpu"))
    return {r.num_visual_tokens: r for r in comparer.answer(scene.image, scene.question, budgets) if r.done}


def _check_panel(driver, index: int, m: int, expected) -> None:
    from mqt_llava.app.cost import format_flops

    panel = driver.find_element(By.ID, f"panel-{index}")
    assert f"answer at m = {m}" in panel.text
    assert driver.find_element(By.CSS_SELECTOR, f"#answer-{index} textarea").get_attribute("value") == expected.text
    cost = _wait_for_text(driver, f"cost-{index}", "latency")
    assert f"forward FLOPs {format_flops(expected.flops.total)}" in cost
    assert "ms for" in cost
    WebDriverWait(driver, ANSWER_S).until(lambda d: _overlay_loaded(d, index), message=f"overlay {index} did not load")


def test_app_answers_an_example_scene_in_a_browser(app_url, browser, tmp_path):
    """Protects the demo a person sees: clicking an example scene shows it and fills in its question; with m set and
    a question typed, Answer shows the model's own answer at that m, its forward FLOPs and latency, and the attention
    overlay; compare mode then shows the ticked budgets side by side, and changing the tokens shown redraws the
    overlays without answering again. Keeps a screenshot (tmp_path/app.png)."""
    from mqt_llava.app.compare import budget_choices
    from mqt_llava.app.examples import example_scenes

    scene = example_scenes()[3]
    _, ticked = budget_choices(64)
    expected = _expected(scene, [8, *ticked])

    browser.get(app_url)
    WebDriverWait(browser, ANSWER_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#examples button.thumbnail-item"))
    browser.find_elements(By.CSS_SELECTOR, "#examples button.thumbnail-item")[3].click()
    _wait_for_text(browser, "status", "Example scene 4")
    assert browser.find_element(By.CSS_SELECTOR, "#question textarea").get_attribute("value") == scene.question
    WebDriverWait(browser, ANSWER_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#preview img"))

    _type(browser, "#budget input[type=number]", "8")
    assert browser.find_element(By.CSS_SELECTOR, "#budget input[type=range]").get_attribute("value") == "8"
    _type(browser, "#question textarea", scene.question)
    browser.find_element(By.ID, "answer-button").click()
    _wait_for_text(browser, "status", "Answered at m = 8.")
    _check_panel(browser, 0, 8, expected[8])
    assert not browser.find_elements(By.ID, "panel-1")

    browser.find_element(By.CSS_SELECTOR, "#compare input").click()
    browser.find_element(By.ID, "answer-button").click()
    _wait_for_text(browser, "status", f"Answered at m = {', '.join(map(str, ticked))}.")
    for index, m in enumerate(ticked):
        _check_panel(browser, index, m, expected[m])
    for first_tokens in ("1", "3"):
        _set_first_tokens_and_wait_for_redraw(browser, first_tokens)

    _fit_window_to_page(browser)
    screenshot = tmp_path / "app.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("MQT_LLAVA_APP_SCREENSHOT"):
        shutil.copyfile(screenshot, os.environ["MQT_LLAVA_APP_SCREENSHOT"])
    browser.set_window_size(1400, 1000)


def test_app_shows_bad_input_as_a_message_in_the_page(app_url, browser, tmp_path):
    """Protects what a person sees on bad input: asking without an image, uploading a file that is not an image
    (named in the message) and asking an empty question each show a clear sentence, and no answer or traceback."""
    browser.get(app_url)
    WebDriverWait(browser, ANSWER_S).until(lambda d: d.find_elements(By.ID, "answer-button"))
    _type(browser, "#question textarea", "What color is the circle?")
    browser.find_element(By.ID, "answer-button").click()
    _wait_for_text(browser, "status", "No image")

    broken = tmp_path / "not_a_picture.png"
    broken.write_bytes(b"plain text, not an image")
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(broken))
    _wait_for_text(browser, "status", "Could not read the file 'not_a_picture.png' as an image")

    browser.find_elements(By.CSS_SELECTOR, "#examples button.thumbnail-item")[0].click()
    _wait_for_text(browser, "status", "Example scene 1")
    _type(browser, "#question textarea", "")
    browser.find_element(By.ID, "answer-button").click()
    _wait_for_text(browser, "status", "The question is empty")
    assert not browser.find_elements(By.ID, "panel-0")
    assert "Traceback" not in browser.page_source


@pytest.mark.skipif(not (SHIPPED_MODEL / "config.json").is_file(), reason="the shipped model is not built")
def test_space_entry_serves_the_app(tmp_path):
    """Protects the Hugging Face Space entry: `python spaces/app.py`, run as a Space runs it (port and address from
    GRADIO_SERVER_PORT and GRADIO_SERVER_NAME), serves the app's page on the shipped model."""
    port = _free_port()
    env = {"GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    server, log = _serve([sys.executable, str(REPO_ROOT / "spaces" / "app.py")], tmp_path, env)
    try:
        _wait_for_page(f"http://127.0.0.1:{port}/", server, log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10) as response:
            config = response.read().decode()
        assert "MQT-LLaVA: one model, any number of visual tokens" in config
        assert "mqt-llava-tiny" in config
    finally:
        _stop(server)
