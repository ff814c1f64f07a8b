"""Screenshots of the documentation site, taken by headless Chromium (Debian: apt-get install chromium
chromium-driver), for the closing notes and the docs themselves.

  python scripts/site_screenshots.py --site /tmp/site --out docs/images [--page getting-started --page gallery]

Builds the site into `--site` first (`mkdocs build --strict`) unless `--no_build`, serves it on a free local
port and writes `<out>/site_<page>.png` for each page.
"""

import argparse
import functools
import http.server
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tab_walkthrough  # noqa: E402  (the headless browser and a free port, as the tab's walkthrough uses them)


def serve(folder: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A local HTTP server of `folder` in a thread, and its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=folder)
    server = http.server.ThreadingHTTPServer(("localhost", tab_walkthrough.free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://localhost:{server.server_address[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--site", default="/tmp/vizdeconv_site", help="where the site is (or is built)")
    parser.add_argument("--out", default="docs/images")
    parser.add_argument("--page", action="append", default=None, help="page name (default: getting-started, gallery)")
    parser.add_argument("--no_build", action="store_true")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not args.no_build:
        env = dict(os.environ, NO_MKDOCS_2_WARNING="1", TF_CPP_MIN_LOG_LEVEL="3")
        subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", args.site], cwd=root,
                       env=env, check=True)  # fmt: skip
    server, base = serve(args.site)
    driver = tab_walkthrough.open_browser(width=1280, height=1600)
    try:
        for page in args.page or ["getting-started", "gallery"]:
            driver.get(f"{base}/{page}/")
            time.sleep(1.0)  # the theme's fonts and the pictures
            path = os.path.join(args.out, f"site_{page.strip('/').replace('-', '_').replace('/', '_')}.png")
            driver.save_screenshot(path)
            print(f"{page}: {path}")
    finally:
        driver.quit()
        server.shutdown()


if __name__ == "__main__":
    main()
