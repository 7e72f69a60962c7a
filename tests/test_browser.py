"""The explorer in real JupyterLab, driven by headless Chromium: moving the frame slider must change
the frame image and the score marker. A screenshot is kept in runs/test-artifacts/."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "runs" / "test-artifacts"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not (CHROMIUM and DRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium and chromium-driver (see .ci/run)")
    pytest.skip(
        "Debian's chromium and chromium-driver are not installed (apt-get install chromium "
        "chromium-driver; .ci/run does it)",
        allow_module_level=True,
    )


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


def _notebook(path: Path, checkpoint: Path, manifest: Path) -> None:
    import nbformat

    code = (
        "from fbifpn.engine import checkpoint as ckpt\n"
        "from fbifpn.models.net import build_model\n"
        "from fbifpn.widgets import Explorer\n"
        f"saved = ckpt.load({str(checkpoint)!r})\n"
        "model = build_model(ckpt.config_of(saved), pretrained=False)\n"
        "model.load_state_dict(saved['model'])\n"
        f"explorer = Explorer(model, {str(manifest)!r}, 64, split='test')\n"
        "explorer.widget"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_explorer_slider_in_headless_chromium(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from fbifpn import build_model, load_config
    from fbifpn.data.cache import prepared_manifest
    from fbifpn.engine import checkpoint as ckpt

    cfg = load_config("smoke")
    manifest = prepared_manifest(cfg, progress=False)
    checkpoint = tmp_path / "model.pt"
    ckpt.save(checkpoint, model=build_model(cfg).state_dict(), config=cfg.to_dict())
    _notebook(tmp_path / "explorer.ipynb", checkpoint, manifest)

    port, token = _port(), "fbifpn-test"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = None
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", 60)
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        driver.get(f"http://127.0.0.1:{port}/lab/tree/explorer.ipynb?token={token}")
        wait = WebDriverWait(driver, 120)
        # the kernel is up when the status bar says so; then Run > Run All Cells
        wait.until(
            lambda d: d.find_elements(
                By.XPATH, "//*[contains(@class, 'jp-StatusBar')]//*[contains(text(), '| Idle')]"
            )
        )
        driver.find_element(
            By.XPATH, "//div[contains(@class, 'lm-MenuBar-itemLabel') and text()='Run']"
        ).click()
        wait.until(
            lambda d: d.find_element(
                By.XPATH, "//div[contains(@class, 'lm-Menu-itemLabel') and text()='Run All Cells']"
            )
        ).click()
        images = wait.until(
            lambda d: (
                d.find_elements(By.CSS_SELECTOR, ".jupyter-widgets img")
                if len(d.find_elements(By.CSS_SELECTOR, ".jupyter-widgets img")) >= 2
                else False
            )
        )
        before = [img.get_attribute("src") for img in images]
        slider = next(
            s
            for s in driver.find_elements(By.CSS_SELECTOR, ".widget-slider")
            if s.find_element(By.CSS_SELECTOR, ".widget-label").text.strip() == "frame"
        )
        readout = slider.find_element(By.CSS_SELECTOR, ".widget-readout")
        assert readout.text.strip() == "0"
        handle = slider.find_element(By.CSS_SELECTOR, ".noUi-handle")
        handle.click()
        handle.send_keys(Keys.ARROW_RIGHT)
        WebDriverWait(driver, 60).until(lambda d: readout.text.strip() == "1")

        def changed(d):
            now = [
                img.get_attribute("src") for img in d.find_elements(By.CSS_SELECTOR, ".jupyter-widgets img")
            ]
            return now if len(now) >= 2 and now[0] != before[0] and now[1] != before[1] else False

        after = WebDriverWait(driver, 60).until(changed)
        assert after[0] != before[0]  # the frame image changed
        assert after[1] != before[1]  # the timeline (its current-frame marker) changed
    finally:
        if driver is not None:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "explorer-browser.png"))
            driver.quit()
        os.killpg(server.pid, signal.SIGTERM)  # the server and its kernel
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
