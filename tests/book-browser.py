#!/usr/bin/env python3
"""tests/book-browser.py: read the HTML book in a real browser.

    python3 tests/book-browser.py [build/book]

Headless Chromium (Debian's chromium; scripts/deps.sh --book installs it)
opens every page of the book (build/book/pages.txt lists them) at two sizes,
a laptop (1366x900) and a phone (390x844, as a phone: the page's viewport
meta tag counts), and checks

  book-browser-overflow   no page scrolls sideways: the document is no wider
                          than the window (wide listings and tables must
                          scroll inside their own box)
  book-browser-links      every link to a page of the book reaches a page
                          that exists and an anchor that is on it
  book-browser-console    the browser reports no error: no console error, no
                          uncaught exception, nothing it failed to load

It saves the top of every page, at both sizes, as a PNG in
build/book/shots/<size>/<page>.png, for a human to look at.

The browser is driven through its DevTools protocol over a pipe
(--remote-debugging-pipe: JSON messages ended by a NUL byte on file
descriptors 3 and 4), so nothing but Python's standard library is needed and
no network port is opened. Output: one line per check, "PASS name" or
"FAIL name: why"; exit status 1 if any check failed.
"""

import base64
import fcntl
import select
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

SIZES = [("laptop", 1366, 900, False), ("phone", 390, 844, True)]
TIMEOUT = 30  # seconds for one page to load

# Run in the page once it has loaded: how wide the document is, the widest
# culprits if it is too wide, every id, every link.
PROBE = r"""
(() => {
  const root = document.documentElement;
  const width = root.clientWidth;
  const culprits = [];
  if (root.scrollWidth > width) {
    for (const e of document.body.querySelectorAll('*')) {
      const r = e.getBoundingClientRect();
      if (r.right > width + 1 && culprits.length < 3) {
        let p = e.parentElement, inside = false;
        for (; p; p = p.parentElement) {
          const s = getComputedStyle(p).overflowX;
          if (s === 'auto' || s === 'scroll' || s === 'hidden') { inside = true; break; }
        }
        if (!inside) culprits.push(e.tagName.toLowerCase() +
            (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '') +
            ' ' + Math.round(r.right) + 'px');
      }
    }
  }
  return JSON.stringify({
    scrollWidth: root.scrollWidth, width: width, culprits: culprits,
    ids: Array.from(document.querySelectorAll('[id]'), e => e.id),
    links: Array.from(document.querySelectorAll('a[href]'), a => a.href),
  });
})()
"""


class Browser:
    """Chromium, spoken to over --remote-debugging-pipe."""

    def __init__(self, exe, profile):
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def fds():  # in the child: the pipe ends become fds 3 and 4
            r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)  # out of the way
            w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--mute-audio",
             "--hide-scrollbars", "--disable-dev-shm-usage", "--remote-debugging-pipe",
             "--user-data-dir=" + profile, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, preexec_fn=fds, pass_fds=(3, 4))
        os.close(to_child_r)
        os.close(from_child_w)
        self.buf = b""
        self.next_id = 0
        self.events = []

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_child, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def read(self, deadline):
        while b"\0" not in self.buf:
            if time.monotonic() > deadline:
                raise TimeoutError("the browser did not answer in time")
            r, _, _ = select.select([self.from_child], [], [], 0.5)
            if r:
                chunk = os.read(self.from_child, 1 << 20)
                if not chunk:
                    raise EOFError("the browser went away")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None, timeout=TIMEOUT):
        want = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            m = self.read(deadline)
            if m.get("id") == want:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"].get("message")))
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def wait_event(self, method, session, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        for i, m in enumerate(self.events):
            if m.get("method") == method and m.get("sessionId") == session:
                del self.events[i]
                return m
        while True:
            m = self.read(deadline)
            if m.get("method") == method and m.get("sessionId") == session:
                return m
            if "method" in m:
                self.events.append(m)

    def close(self):
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()
            self.proc.wait()


def problems_in(events, session):
    """The errors the browser reported on this session."""
    out = []
    for m in events:
        if m.get("sessionId") != session:
            continue
        p = m.get("params", {})
        if m["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description", "")))
                                              for a in p.get("args", [])))
        elif m["method"] == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
        elif m["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            out.append("log: %s %s" % (e.get("text", ""), e.get("url", "")))
    return out


def main():
    book = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/book")
    failed = False

    def result(name, why):
        nonlocal failed
        if why:
            failed = True
            print("FAIL %s: %s" % (name, "; ".join(why[:5]) +
                                    ("; and %d more" % (len(why) - 5) if len(why) > 5 else "")))
        else:
            print("PASS " + name)

    exe = shutil.which("chromium") or shutil.which("chromium-browser") or \
        shutil.which("google-chrome")
    if not exe:
        result("book-browser", ["no chromium (scripts/deps.sh --book installs it)"])
        return 1
    try:
        pages = open(os.path.join(book, "pages.txt")).read().split()
    except OSError:
        result("book-browser", ["no %s/pages.txt: run make book first" % book])
        return 1

    shots = os.path.join(book, "shots")
    overflow, console, ids, links, missing = [], [], {}, {}, []

    profile = tempfile.mkdtemp(prefix="hvbook-chromium-")
    browser = Browser(exe, profile)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget",
                               {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.call(domain + ".enable", session=session)
        for size, w, h, mobile in SIZES:
            os.makedirs(os.path.join(shots, size), exist_ok=True)
            browser.call("Emulation.setDeviceMetricsOverride",
                         {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile},
                         session=session)
            browser.call("Emulation.setTouchEmulationEnabled", {"enabled": mobile},
                         session=session)
            for page in pages:
                path = os.path.join(book, page + ".html")
                if not os.path.exists(path):
                    missing.append("%s.html, in pages.txt, is missing" % page)
                    continue
                url = "file://" + urllib.parse.quote(path)
                browser.events = []
                nav = browser.call("Page.navigate", {"url": url}, session=session)
                if "errorText" in nav:
                    raise RuntimeError("%s: %s" % (url, nav["errorText"]))
                if nav.get("loaderId"):  # none if only the #fragment changed
                    browser.wait_event("Page.loadEventFired", session)
                r = browser.call("Runtime.evaluate",
                                 {"expression": PROBE, "returnByValue": True}, session=session)
                probe = json.loads(r["result"]["value"])
                if probe["scrollWidth"] > probe["width"]:
                    overflow.append("%s.html at %dx%d is %d px wide (%s)" % (
                        page, w, h, probe["scrollWidth"], ", ".join(probe["culprits"]) or "?"))
                ids[page] = set(probe["ids"])
                links[page] = probe["links"]
                for p in problems_in(browser.events, session):
                    console.append("%s.html at %dx%d: %s" % (page, w, h, p))
                shot = browser.call("Page.captureScreenshot", {"format": "png"}, session=session)
                with open(os.path.join(shots, size, page + ".png"), "wb") as f:
                    f.write(base64.b64decode(shot["data"]))
    except (TimeoutError, EOFError, RuntimeError, KeyError) as e:
        result("book-browser", ["the browser run broke off: %s" % e])
        return 1
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)

    broken, seen = sorted(set(missing)), set()
    prefix = "file://" + urllib.parse.quote(book) + "/"
    for page, hrefs in links.items():
        for href in sorted(set(hrefs)):
            if not href.startswith("file:"):
                continue  # the world outside the book is not ours to check
            if not href.startswith(prefix):
                broken.append("%s.html links outside the book: %s" % (page, href))
                continue
            target, _, anchor = href[len(prefix):].partition("#")
            name = urllib.parse.unquote(target)
            if not name.endswith(".html") or name[:-5] not in ids:
                if (page, name) not in seen:
                    broken.append("%s.html links to a missing page %s" % (page, name))
                seen.add((page, name))

            elif anchor and urllib.parse.unquote(anchor) not in ids[name[:-5]]:
                broken.append("%s.html links to %s#%s, which is not there" % (
                    page, name, urllib.parse.unquote(anchor)))

    result("book-browser-overflow", overflow)
    result("book-browser-links", broken)
    result("book-browser-console", console)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
