"""summary.html opened in a real headless browser (Chromium): every figure of the plan is an <img>
that loads (naturalWidth > 0), served over http://127.0.0.1 from the results directory, as a
reader opening results/summary.html would see it.

The page is loaded in an iframe of a small check page on the same origin; after the load event
(which waits for the frame and its images) a script writes each image's state into the DOM, and
``chromium --dump-dom`` prints it. No browser driver package is needed. Without Chromium the test
is skipped, except in CI (``CI`` set), where .ci/run installs it and its absence is a failure.
"""

from __future__ import annotations

import functools
import html
import json
import os
import re
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from biospike import report
from biospike.cli import main as biospike_main
from biospike.plan import plan_from_json
from tests.unit.test_report import build_fake_results, build_plan

CHECK_PAGE = "/__image_check__.html"
CHECK_HTML = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<pre id="image-check">pending</pre>
<iframe id="page" src="/{page}" style="width:1400px;height:900px"></iframe>
<script>
window.addEventListener("load", function () {{
  var out = document.getElementById("image-check");
  try {{
    var doc = document.getElementById("page").contentDocument;
    var images = Array.prototype.map.call(doc.images, function (img) {{
      return {{src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}};
    }});
    out.textContent = JSON.stringify({{title: doc.title, images: images}});
  }} catch (err) {{
    out.textContent = JSON.stringify({{error: String(err)}});
  }}
}});
</script></body></html>
"""


def chromium() -> str:
    """The Chromium binary; skip without it (fail in CI, where .ci/run installs it)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    why = "no Chromium (install it with `apt-get install -y chromium chromium-driver`)"
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must run the headless-browser test of the HTML report")
    pytest.skip(why)


class _Handler(SimpleHTTPRequestHandler):
    """Files of the results directory, plus the check page; remembers what was served."""

    served: list[tuple[str, int]]
    page: str

    def do_GET(self):  # noqa: N802
        if self.path.split("?")[0] == CHECK_PAGE:
            body = CHECK_HTML.format(page=self.page).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_request(self, code="-", size="-"):  # noqa: ARG002
        self.served.append((self.path, int(code) if str(code).isdigit() else 0))

    def log_message(self, *args):  # quiet
        pass


def open_in_chromium(root: Path, page: str, tmp_path: Path) -> tuple[dict, list[tuple[str, int]]]:
    """Serve ``root`` on 127.0.0.1, open ``page`` in headless Chromium; (image states, served paths)."""
    browser = chromium()
    served: list[tuple[str, int]] = []
    handler = functools.partial(type("H", (_Handler,), {"served": served, "page": page}), directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    try:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync",
               "--disable-extensions", "--mute-audio", f"--user-data-dir={profile}", "--virtual-time-budget=20000",
               "--dump-dom", f"http://127.0.0.1:{server.server_address[1]}{CHECK_PAGE}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    finally:
        server.shutdown()
        server.server_close()
    match = re.search(r'<pre id="image-check">(.*?)</pre>', proc.stdout, re.S)
    assert proc.returncode == 0 and match, f"chromium failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
    state = json.loads(html.unescape(match.group(1)))
    assert "error" not in state, state
    return state, served


@pytest.fixture(scope="module")
def fake_report(tmp_path_factory):
    """A fake results tree (the report unit tests' builder) with its summary and every figure,
    written by the CLI as the workflow's report and figure rules do."""
    root = tmp_path_factory.mktemp("browser")
    plan_raw = {"ds_a": build_plan()["ds_a"]}
    results = build_fake_results(root, plan_raw)
    params = json.dumps({"settings": {"report": {"dpi": 50}}})
    common = ["report", "--params", params, "--plan", json.dumps(plan_raw), "--results", str(results)]
    assert biospike_main([*common, "--output-json", str(results / "summary.json"),
                          "--output-html", str(results / "summary.html")]) == 0
    assert biospike_main([*common, "--figures", str(results / "figures")]) == 0
    return results, plan_from_json(plan_raw)


def test_every_figure_loads_in_a_real_browser(fake_report, tmp_path):
    results, plan = fake_report
    state, served = open_in_chromium(results, "summary.html", tmp_path)
    assert state["title"] == "biospike summary"
    pngs = sorted(p.relative_to(results).as_posix() for p in report.report_outputs(plan, results) if p.suffix == ".png")
    images = state["images"]
    assert sorted(i["src"] for i in images) == pngs, "summary.html must show every figure of the plan, once"
    broken = [i for i in images if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
    assert not broken, f"{len(broken)} image(s) did not load: {broken[:3]}"
    ok = {path.lstrip("/") for path, code in served if code == 200}
    assert set(pngs) <= ok, "the browser fetched every figure from the server"


def test_the_browser_check_sees_a_missing_figure(fake_report, tmp_path):
    """The same check fails when a figure is missing: the image reports naturalWidth 0."""
    results, plan = fake_report
    copy = tmp_path / "results"
    shutil.copytree(results, copy, ignore=shutil.ignore_patterns("*.h5", "*.svg"))
    gone = copy / "figures" / "ds_a" / "roc.png"
    gone.unlink()
    state, _ = open_in_chromium(copy, "summary.html", tmp_path)
    broken = [i["src"] for i in state["images"] if i["width"] == 0]
    assert broken == ["figures/ds_a/roc.png"]


@pytest.mark.workflow
@pytest.mark.slow
def test_tiny_workflow_summary_loads_every_figure(tiny_run, tmp_path):
    """The real thing: the tiny workflow's summary.html, written by the report rule while the
    figure rules write the figures, shows each one in the browser."""
    from biospike.config import load_yaml, validate_config
    from biospike.plan import build_plan as plan_of_config
    from tests.workflow.helpers import REPO, TINY

    workdir, proc = tiny_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    results = workdir / "results"
    plan = plan_of_config(validate_config(load_yaml(TINY)), REPO / "config" / "hardware")
    state, _ = open_in_chromium(results, "summary.html", tmp_path)
    pngs = sorted(p.relative_to(results).as_posix() for p in report.report_outputs(plan, results) if p.suffix == ".png")
    assert sorted(i["src"] for i in state["images"]) == pngs
    broken = [i for i in state["images"] if not (i["complete"] and i["width"] > 0)]
    assert not broken, broken[:3]
