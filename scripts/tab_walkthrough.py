"""Clicks through TensorBoard's Deconvnet tab in headless Chromium and saves a screenshot.

    python scripts/tab_walkthrough.py --logdir logs [--run ref3000] [--out docs/images/tensorboard_tab.png]

Starts `tensorboard --logdir LOGDIR` on a free port, opens the tab, clicks a feature map, waits for its
top-9, moves the step slider, projects a probe image (whole map, then one unit) and saves a screenshot.
It uses the system's Chromium and chromedriver (Debian: `apt-get install chromium chromium-driver`) and
never downloads a browser. The tests call `open_browser` and `walk` from here too.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = ("chromedriver",)


def find_browser() -> tuple[str, str] | None:
    """(browser, driver) executables on PATH (or /usr/lib/chromium), or None when either is missing."""
    browser = next((shutil.which(name) for name in CHROMIUM if shutil.which(name)), None)
    driver = next((shutil.which(name) for name in CHROMEDRIVER if shutil.which(name)), None)
    if driver is None and os.path.isfile("/usr/lib/chromium/chromedriver"):
        driver = "/usr/lib/chromium/chromedriver"
    return (browser, driver) if browser and driver else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def start_tensorboard(logdir: str, timeout: float = 90):
    """(process, base URL) of a TensorBoard serving `logdir` once its plugin listing answers."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            logdir,
            "--port",
            str(port),
            "--host",
            "localhost",
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    base = f"http://localhost:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tensorboard exited: {process.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(base + "/data/plugins_listing", timeout=5) as response:
                listing = json.load(response)
            if listing.get("vizdeconv", {}).get("enabled"):
                return process, base
        except OSError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("tensorboard did not list an enabled vizdeconv plugin in time")


def open_browser(width: int = 1400, height: int = 2000, dark: bool = False):
    """A headless Chromium WebDriver using the system's browser and driver (no download); `dark`: the
    browser prefers a dark colour scheme (TensorBoard then shows its dark theme)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        raise RuntimeError("no chromium and chromedriver on PATH (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=found[1]), options=options)
    if dark:
        driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
        )
    return driver


# Where the tab says why a panel has nothing to show (a run whose model cannot be rebuilt).
OPTIMIZED_ERROR, PROBES_ERROR = "#optimized .error", "#probes .error"


def walk(
    driver, base: str, screenshot: str, run: str | None = None, channel: int = 1, probe: int = 1, timeout: float = 60
) -> dict:
    """Opens the tab and clicks through it; returns what it saw and how long things took.

    Returns:
      dict: first_paint_seconds (page load to the feature-map tiles), tiles, top9_cards, optimized (the
      optimized image's caption, data URI and width), steps
      (evolution labels seen while moving the slider; none, and evolution_message, for a run without kept
      checkpoints), projection_info (captions of the whole-map and
      the unit projection), projection_seconds, attribution (the probe's Grad-CAM maps of its top classes:
      captions, whether every map image loaded, then Score-CAM's caption), screenshot path.
    """
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    # Panels repaint wholesale when a reply lands, so an element found a moment ago may be gone: every
    # wait retries on a stale reference and every read goes through one script call, which cannot tear.
    wait = WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException))

    def text(css: str) -> str | None:
        return driver.execute_script("const e = document.querySelector(arguments[0]); return e && e.innerText", css)

    def loaded(css: str) -> bool:
        return driver.execute_script(
            "const e = document.querySelector(arguments[0]); return !!(e && e.complete && e.naturalWidth)", css
        )

    seen = {}
    started = time.perf_counter()
    driver.get(base + "/#vizdeconv")
    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe")))
    driver.switch_to.frame(frame)
    picker = wait.until(ec.presence_of_element_located((By.ID, "run")))
    if run is not None and Select(picker).first_selected_option.text != run:
        Select(picker).select_by_visible_text(run)
    # A run the explorer has not seen says so instead of showing tiles: nothing further to click.
    wait.until(lambda d: text(".tile img") is not None or (text("#feature-maps .message") or "").startswith("No "))
    if not driver.find_elements(By.CSS_SELECTOR, ".tile img"):
        raise RuntimeError(f"run {run or '(the first)'}: {text('#feature-maps .message')}")
    wait.until(
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('.tile img')].every(i => i.complete && i.naturalWidth)"
        )
    )
    seen["first_paint_seconds"] = round(time.perf_counter() - started, 2)
    seen["tiles"] = driver.execute_script("return document.querySelectorAll('.tile').length")

    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f".tile[data-channel='{channel}']").click() or True)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#top9 .card[data-rank]")) >= 1)
    seen["top9_cards"] = driver.execute_script("return document.querySelectorAll('#top9 .card[data-rank]').length")
    seen["top9_captions"] = driver.execute_script(
        "return [...document.querySelectorAll('#top9 .card[data-rank] .caption')].map(c => c.innerText)"
    )

    # A run with no model to rebuild (an applications model explored with random weights) says why instead.
    def optimized_shown() -> bool:
        return text("#optimized-info") is not None and loaded("#optimized-img")

    wait.until(lambda d: optimized_shown() or text(OPTIMIZED_ERROR) is not None)
    if text(OPTIMIZED_ERROR) is not None:
        seen["optimized_error"] = text(OPTIMIZED_ERROR)
    else:
        seen["optimized"] = driver.execute_script(
            """const i = document.getElementById('optimized-img');
            return {info: document.getElementById('optimized-info').innerText, src: i.src, width: i.naturalWidth}"""
        )
        wait.until(lambda d: Select(d.find_element(By.ID, "optimize-method")).select_by_value("pixel") or True)
        wait.until(lambda d: (text("#optimized-info") or "").startswith("pixel"))  # none stored: computed
        seen["optimized_pixel"] = text("#optimized-info")
        seen["optimized_pixel_source"] = driver.execute_script(
            "const c = document.querySelectorAll('#optimized .caption'); return c[c.length - 1].innerText"
        )

    # A run without kept checkpoints (an explored Keras model) says so in the panel instead of a slider.
    wait.until(lambda d: text("#evolution-step") is not None or text("#evolution .message") is not None)
    if text("#evolution-step") is None:
        seen["steps"], seen["evolution_message"] = [], text("#evolution .message")
    else:
        seen["steps"] = [text("#evolution-step")]
        wait.until(lambda d: d.find_element(By.ID, "step").send_keys(Keys.HOME) or True)
        wait.until(lambda d: text("#evolution-step") not in (None, seen["steps"][0]))
        seen["steps"].append(text("#evolution-step"))
        seen["evolution_image_src"] = driver.execute_script("return document.getElementById('evolution-img').src")

    wait.until(lambda d: text("#projection-info") is not None or text(PROBES_ERROR) is not None)
    if text(PROBES_ERROR) is not None:
        seen["projection_error"] = text(PROBES_ERROR)
        driver.switch_to.default_content()
        driver.save_screenshot(screenshot)
        seen["screenshot"] = screenshot
        return seen
    started = time.perf_counter()
    # "image N (class)", the caption its projection gets
    title = driver.execute_script(f"return document.getElementById('probe-{probe}').title")
    wait.until(lambda d: d.find_element(By.ID, f"probe-{probe}").click() or True)
    wait.until(lambda d: text("#projection-info") is not None and text("#projection .caption") == title)
    infos = [text("#projection-info")]
    wait.until(lambda d: d.find_element(By.ID, "feature-map-img").click() or True)  # the centre unit
    wait.until(lambda d: "unit (" in (text("#projection-info") or ""))
    infos.append(text("#projection-info"))
    seen["projection_seconds"] = round(time.perf_counter() - started, 2)
    seen["projection_info"] = infos
    # Why this class: the selected probe's attribution maps, then another method picked.
    figures = "#attribution-maps .figure.attribution"
    wait.until(lambda d: text("#attribution-info") is not None or text("#attribution .error") is not None)
    attribution = {"error": text("#attribution .error")}
    if attribution["error"] is None:
        attribution["captions"] = driver.execute_script(
            f"return [...document.querySelectorAll('{figures} .caption')].map(c => c.innerText)"
        )
        images = f"[...document.querySelectorAll('{figures} img')]"
        all_loaded = f"return {images}.length > 0 && {images}.every(i => i.complete && i.naturalWidth)"
        wait.until(lambda d: d.execute_script(all_loaded))
        attribution["loaded"] = True
        Select(driver.find_element(By.ID, "attribution-method")).select_by_value("scorecam")
        wait.until(lambda d: d.execute_script(f"return {images}.some(i => i.alt.startsWith('scorecam'))"))
        attribution["scorecam_info"] = text("#attribution-info")
    seen["attribution"] = attribution
    # Each sanity chart: its axis labels, whether any two overlap, the stages named on hover.
    seen["sanity_charts"] = driver.execute_script(
        """return [...document.querySelectorAll('#analyses svg')].map(svg => {
          const boxes = [...svg.querySelectorAll('text.stage')].map(t => t.getBBox());
          const overlap = boxes.some((a, i) => boxes.slice(i + 1).some(
            b => a.x < b.x + b.width && b.x < a.x + a.width));
          const inside = boxes.every(b => b.x >= 0 && b.x + b.width <= svg.width.baseVal.value);
          return {labels: [...svg.querySelectorAll('text.stage')].map(t => t.textContent), overlap, inside,
                  hover: [...svg.querySelectorAll('circle title')].map(t => t.textContent)};
        })"""
    )
    seen["background"] = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    driver.switch_to.default_content()
    driver.save_screenshot(screenshot)
    seen["screenshot"] = screenshot
    return seen


def switch_runs_with_a_slow_reply(
    driver, base: str, slow_run: str, final_run: str, delay_ms: int = 3000, timeout: float = 60
) -> dict:
    """Picks `slow_run`, then at once `final_run`, while every reply about `slow_run` is held back
    `delay_ms`: the late replies must not repaint the panels of `final_run`.

    Returns:
      dict: run (the picker's value), project_layers (the projection panel's layer options),
      feature_maps (the feature-map panel's heading), after the late replies have arrived.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(driver, timeout)
    driver.get(base + "/#vizdeconv")
    driver.switch_to.frame(wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe"))))
    wait.until(ec.presence_of_element_located((By.ID, "project-layer")))
    if Select(driver.find_element(By.ID, "run")).first_selected_option.text == slow_run:
        Select(driver.find_element(By.ID, "run")).select_by_visible_text(final_run)
        wait.until(ec.presence_of_element_located((By.ID, "project-layer")))
    driver.execute_script(
        """
        const [slow, delay] = arguments;
        const original = window.fetch;
        window.fetch = (url, ...rest) => {
          const reply = original(url, ...rest);
          if (!String(url).includes('run=' + encodeURIComponent(slow))) return reply;
          return reply.then((response) => new Promise((ok) => setTimeout(() => ok(response), delay)));
        };
        """,
        slow_run,
        delay_ms,
    )
    Select(driver.find_element(By.ID, "run")).select_by_visible_text(slow_run)
    Select(driver.find_element(By.ID, "run")).select_by_visible_text(final_run)
    time.sleep(delay_ms / 1000 + 2)  # the held-back replies have arrived by now
    wait.until(ec.presence_of_element_located((By.ID, "project-layer")))
    seen = driver.execute_script(  # one script call: a repaint cannot tear the reading
        """const run = document.getElementById('run');
        return {run: run.options[run.selectedIndex].text,
                project_layers: [...document.querySelectorAll('#project-layer option')].map(o => o.value),
                feature_maps: document.querySelector('#feature-maps .message').innerText}"""
    )
    driver.switch_to.default_content()
    return seen


def walk_upload(driver, base: str, image: str | None, screenshot: str, run: str | None = None, layer: str | None = None,
                timeout: float = 60, split_image: str | None = None) -> dict:  # fmt: skip
    """Uploads `image` through the tab's file input (or picks `split_image`, e.g. "test:9", with the split's
    picker: its class's list first, then the id), picks `layer`, clicks its strongest channel, moves on with the
    right arrow key, and reads what the "Your image" panel shows.

    Returns:
      dict: seconds (upload to the layer's tiles), predictions, preprocess, tiles, channels (the layer's,
      from its heading), selected (the clicked channel, then after ArrowRight), projections (captions),
      top9 (loaded top-9 images), gradcam_captions (the top class's, then a picked class's), screenshot path.
    """
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException))
    script = driver.execute_script
    driver.get(base + "/#vizdeconv")
    driver.switch_to.frame(wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe"))))
    picker = wait.until(ec.presence_of_element_located((By.ID, "run")))
    if run is not None and Select(picker).first_selected_option.text != run:
        Select(picker).select_by_visible_text(run)
    started = time.perf_counter()
    seen = {}
    if split_image is None:
        wait.until(ec.presence_of_element_located((By.ID, "upload-input"))).send_keys(os.path.abspath(image))
    else:
        split, image_id = split_image.split(":")
        Select(wait.until(ec.presence_of_element_located((By.ID, "split-class")))).select_by_value("3")
        wait.until(lambda d: script("return document.querySelectorAll('#split-ids .split-id').length") > 0)
        seen["class_ids"] = script(
            "return [...document.querySelectorAll('#split-ids .split-id')].map(b => b.innerText)"
        )
        Select(driver.find_element(By.ID, "split-pick")).select_by_value(split)
        field = driver.find_element(By.ID, "split-id")
        field.clear()
        field.send_keys(image_id)
        driver.find_element(By.ID, "split-show").click()
    wait.until(lambda d: script("return document.querySelectorAll('.live-tile').length") > 0)
    seen["seconds"] = round(time.perf_counter() - started, 2)
    if layer is not None:
        Select(driver.find_element(By.ID, "live-layer")).select_by_value(layer)
        wait.until(lambda d: (script("return document.getElementById('live-layer-info').innerText") or "")
                   .startswith(layer + ":"))  # fmt: skip
    seen["predictions"] = script("return [...document.querySelectorAll('#predictions li')].map(l => l.innerText)")
    seen["preprocess"] = script("return document.getElementById('live-preprocess').innerText")
    seen["tiles"] = script("return document.querySelectorAll('.live-tile').length")
    seen["heading"] = script("return document.getElementById('live-layer-info').innerText")
    Select(driver.find_element(By.ID, "live-order")).select_by_value("strength")
    first = script("return document.querySelector('.live-tile').dataset.channel")
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".live-tile").click() or True)
    wait.until(ec.presence_of_element_located((By.ID, "live-unit-img")))
    selected = [int(first)]
    seen["projections"] = script("return [...document.querySelectorAll('#live-channel > .figure .caption')]"
                                 ".map(c => c.innerText)")  # fmt: skip
    wait.until(lambda d: script("return document.querySelectorAll('#live-gradcam-img, #live-optimized-img').length")
               == 2)  # fmt: skip
    seen["top9"] = script("return [...document.querySelectorAll('.live-top9')].filter(i => i.complete && "
                          "i.naturalWidth).length")  # fmt: skip
    # Grad-CAM of a class picked beside the top class's
    top_name = seen["predictions"][0].split(":")[0]
    option = script("return [...document.querySelectorAll('#live-target option')].find(o => o.value !== '' && "
                    "o.text !== arguments[0]).value", top_name)  # fmt: skip
    Select(driver.find_element(By.ID, "live-target")).select_by_value(option)
    wait.until(ec.presence_of_element_located((By.ID, "live-gradcam-target-img")))
    seen["gradcam_captions"] = script("return [...document.querySelectorAll('#live-extras .figure .caption')]"
                                      ".map(c => c.innerText).filter(t => t.startsWith('Grad-CAM'))")  # fmt: skip
    driver.switch_to.default_content()
    driver.save_screenshot(screenshot)
    driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "iframe"))
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
    wait.until(lambda d: script("return document.querySelector('.live-tile.selected').dataset.channel") != first)
    selected.append(int(script("return document.querySelector('.live-tile.selected').dataset.channel")))
    seen["order"] = [int(c) for c in script("return [...document.querySelectorAll('.live-tile')].slice(0, 2)"
                                            ".map(t => t.dataset.channel)")]  # fmt: skip
    seen["selected"] = selected
    seen["screenshot"] = screenshot
    driver.switch_to.default_content()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logdir", default="logs")
    parser.add_argument("--run", default=None, help="run to show (default: the first)")
    parser.add_argument("--channel", type=int, default=1)
    parser.add_argument("--probe", type=int, default=1, help="probe image to project")
    parser.add_argument("--dark", action="store_true", help="the browser prefers a dark theme")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60,
        help="seconds to wait for each step (an image optimized on demand "
        "for a 224x224 network takes minutes on a CPU)",
    )
    parser.add_argument("--out", default=os.path.join("docs", "images", "tensorboard_tab.png"))
    parser.add_argument("--upload", default=None, help="an image file: walk the 'Your image' panel with it instead")
    parser.add_argument("--layer", default=None, help="--upload: the layer to light up (default: the first)")
    args = parser.parse_args()
    process, base = start_tensorboard(args.logdir)
    driver = open_browser(dark=args.dark)
    try:
        if args.upload:
            seen = walk_upload(driver, base, args.upload, args.out, args.run, args.layer, args.timeout)
        else:
            seen = walk(driver, base, args.out, args.run, args.channel, args.probe, args.timeout)
        print(json.dumps(seen, indent=1))
    except RuntimeError as error:
        sys.exit(f"tab_walkthrough: {error}")
    finally:
        driver.quit()
        process.kill()


if __name__ == "__main__":
    main()
