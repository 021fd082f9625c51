"""Check the built book in a real browser: ``python tools/check_book.py [_build/html]``.

Every page of ``_build/html`` listed in ``_toc.yml`` is loaded in headless Chromium at a desktop
width (1400 px) and a phone width (420 px). After MathJax has typeset the page, a script measures:

* **clipped display math**: a display equation wider than the box it sits in (it is cut off or
  needs a scroll bar), or reaching past the right edge of the viewport; **clipped inline math**:
  a formula in the text that runs past the right edge of its paragraph (MathJax cannot break it;
  formulas in table cells are exempt, since wide tables scroll sideways on a phone);
* **clipped code or output**: a code cell or printed output wider than its box
  (scrolling counts as clipped);
* **raw TeX**: ``$$``, ``\\begin`` or ``\\end{`` left in the visible text (unrendered math);
* **missing images**: an ``<img>`` that did not load.

Independently of the browser, every link ``page.html#anchor`` and ``#anchor`` of the built pages is
resolved against the ids of the target page (**broken anchors**; Sphinx's ``-W -n`` does not check
plain links such as ``[text](#label)``).

Exit status 0 when nothing is found, 1 otherwise; each finding is printed as one line
``page @width: kind: detail``. Needs a Chromium binary (``chromium`` on Debian; set ``CHROMIUM`` to
use another one). Run it through ``make check-book``.
"""

from __future__ import annotations

import argparse
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

WIDTHS = (1400, 420)
MARKER = "__book_check__"

# Runs inside the page: waits for MathJax, measures, and writes the findings into the DOM as JSON.
PROBE = r"""
<script>
(function () {
  function measure() {
    const out = [];
    const vw = document.documentElement.clientWidth;
    const label = (el) => (el.textContent || "").replace(/\s+/g, " ").trim().slice(0, 70);
    const main = document.querySelector("article") || document.body;  // not the sidebars
    main.querySelectorAll('mjx-container[display="true"]').forEach((c) => {
      const math = c.querySelector("mjx-math") || c;
      const w = math.getBoundingClientRect().width;
      const box = c.parentElement.getBoundingClientRect();
      const r = math.getBoundingClientRect().right;
      const eq = c.closest(".math") ? (c.closest(".math").id || "") : "";
      if (w > c.clientWidth + 1 || w > box.width + 1 || r > vw + 1) {
        out.push(["clipped math", `${eq} width ${Math.round(w)} px in a box of ` +
                  `${Math.round(Math.min(c.clientWidth, box.width))} px`]);
      }
    });
    const tex = (c) => {
      try {
        const items = window.MathJax.startup.document.getMathItemsWithin(c);
        return items.length ? items[0].math : label(c);
      } catch (e) {
        return label(c);
      }
    };
    main.querySelectorAll("mjx-container:not([display])").forEach((c) => {
      if (c.closest("td, th")) return;  // wide tables scroll sideways on a phone, by design
      const block = c.closest("p, li, dd, div");
      if (!block) return;
      const r = (c.querySelector("mjx-math") || c).getBoundingClientRect().right;
      let limit = Math.min(block.getBoundingClientRect().right, vw);
      for (let a = c.parentElement; a && a !== main; a = a.parentElement) {
        if (getComputedStyle(a).overflowX !== "visible") {
          limit = Math.min(limit, a.getBoundingClientRect().right);
        }
      }
      if (r > limit + 1) {
        out.push(["clipped inline math", `${Math.round(r - limit)} px past the text: $` +
                  tex(c).slice(0, 90) + "$"]);
      }
    });
    document.querySelectorAll("div.highlight pre, div.cell_output pre, div.output pre")
      .forEach((p) => {
        if (p.scrollWidth > p.clientWidth + 1) {
          out.push(["clipped code/output", `${p.scrollWidth} px in ${p.clientWidth} px: ` +
                    label(p)]);
        }
      });
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const t = n.nodeValue;
      if (!/\$\$|\\begin|\\end\{/.test(t)) continue;
      if (n.parentElement.closest("pre, code, script, style, mjx-container, .highlight")) continue;
      out.push(["raw TeX", t.trim().slice(0, 80)]);
    }
    document.querySelectorAll("img").forEach((im) => {
      if (!im.complete || im.naturalWidth === 0) out.push(["missing image", im.src]);
    });
    const pre = document.createElement("pre");
    pre.id = "__MARKER__";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  let tries = 0;
  function ready() {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) {
      mj.startup.promise.then(() => setTimeout(measure, 200));
    } else if (++tries > 50) {
      measure();  // a page without math never loads MathJax
    } else {
      setTimeout(ready, 100);
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
</script>
""".replace("__MARKER__", MARKER)


class _Links(html.parser.HTMLParser):
    """Collects the ids of a page and the hrefs of its links."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if a.get("name"):
            self.ids.add(a["name"] or "")
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"] or "")


def chromium() -> str:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name) or name
    sys.exit("check_book: no Chromium found (apt-get install chromium, or set CHROMIUM)")


def toc_pages(root: Path, html_dir: Path) -> list[Path]:
    """The built pages of the files listed in _toc.yml, in reading order."""
    names = re.findall(r"(?:root|file):\s*(\S+)", (root / "_toc.yml").read_text())
    pages = [html_dir / f"{n}.html" for n in names]
    return [p for p in pages if p.exists()]


def broken_anchors(html_dir: Path, pages: list[Path]) -> list[tuple[str, str, str]]:
    """(page, 'broken anchor', href) for every in-book link whose #fragment does not exist."""
    parsed: dict[Path, _Links] = {}

    def links(p: Path) -> _Links:
        if p not in parsed:
            parser = _Links()
            parser.feed(p.read_text(encoding="utf-8"))
            parsed[p] = parser
        return parsed[p]

    found = []
    for page in pages:
        for href in links(page).hrefs:
            url = urllib.parse.urlsplit(href)
            if url.scheme or url.netloc or not url.fragment:
                continue
            target = (page.parent / url.path).resolve() if url.path else page
            if not target.exists() or target.suffix != ".html":
                continue
            if urllib.parse.unquote(url.fragment) not in links(target).ids:
                found.append((str(page.relative_to(html_dir)), "broken anchor", href))
    return found


WRAPPER = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="page" src="{src}" style="border:0;width:{width}px;height:1000px"></iframe>
<script>
  // Headless Chromium will not make its window narrower than 500 px: the page is laid out in
  // an iframe of exactly the width under test, and the probe's result is copied out of it.
  function copy() {{
    const doc = document.getElementById("page").contentDocument;
    const found = doc && doc.getElementById("{marker}");
    if (found) {{
      const pre = document.createElement("pre");
      pre.id = "{marker}";
      pre.textContent = found.textContent;
      document.body.appendChild(pre);
    }} else {{
      setTimeout(copy, 100);
    }}
  }}
  copy();
</script></body></html>
"""


def browser_findings(exe: str, page: Path, width: int, tmp: Path) -> list[list[str]]:
    probe_page = page.with_name(f".check-{page.name}")
    wrapper = page.with_name(f".check-wrapper-{page.name}")
    text = page.read_text(encoding="utf-8")
    probe_page.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    wrapper.write_text(
        WRAPPER.format(src=probe_page.name, width=width, marker=MARKER), encoding="utf-8"
    )
    try:
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tempfile.mkdtemp(dir=tmp)}",  # a fresh profile for every load
            "--allow-file-access-from-files",
            f"--window-size={width + 100},1100",
            "--virtual-time-budget=60000",
            "--dump-dom",
            wrapper.as_uri(),
        ]
        dom = subprocess.run(cmd, capture_output=True, text=True, timeout=180).stdout
    finally:
        probe_page.unlink()
        wrapper.unlink()
    m = re.search(rf'<pre id="{MARKER}">(.*?)</pre>', dom, re.S)
    if not m:
        return [["no result", "the page did not finish loading or MathJax did not start"]]
    return json.loads(html.unescape(m.group(1)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html_dir", nargs="?", default="_build/html", type=Path)
    ap.add_argument("--pages", nargs="*", help="only these page names (e.g. book/02_one_layer_fnn)")
    args = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    html_dir = args.html_dir.resolve()
    pages = toc_pages(root, html_dir)
    if args.pages:
        pages = [p for p in pages if str(p.relative_to(html_dir).with_suffix("")) in args.pages]
    if not pages:
        sys.exit(f"check_book: no built pages under {html_dir} (run `make book` first)")
    problems = [f"{p}: {k}: {d}" for p, k, d in broken_anchors(html_dir, pages)]
    exe = chromium()
    with tempfile.TemporaryDirectory() as tmp:
        for page in pages:
            for width in WIDTHS:
                for _ in range(3):  # a heavy page occasionally misses the time budget: retry
                    found = browser_findings(exe, page, width, Path(tmp))
                    if not (found and found[0][0] == "no result"):
                        break
                for kind, detail in found:
                    problems.append(f"{page.relative_to(html_dir)} @{width}px: {kind}: {detail}")
    for line in problems:
        print(line)
    n = len(pages) * len(WIDTHS)
    print(f"check_book: {len(problems)} problem(s), {len(pages)} pages at {WIDTHS} px ({n} loads)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
