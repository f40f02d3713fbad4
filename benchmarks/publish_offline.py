"""Publish the asv dashboard so that it works offline (no CDN).

    python benchmarks/publish_offline.py                # asv publish, then vendor the page's libraries
    python benchmarks/publish_offline.py --no-publish   # only vendor an already published folder
    python benchmarks/publish_offline.py --screenshot docs/asv-dashboard.png

``asv publish`` writes an ``index.html`` that loads jQuery, flot (and its
plugins), bootstrap, stupidtable and blueimp-md5 from CDNs; behind a firewall
or on an air-gapped cluster the page then shows only "One or more external
(JavaScript) dependencies of airspeed velocity failed to load". This script
downloads the same libraries from the npm registry (each tarball checked
against the registry's sha512 integrity), copies the files the page uses to
``<html_dir>/vendor/`` and points the page's URLs at them. It fails if a
page still refers to a CDN (a newer asv with a new dependency), so that a
dashboard that would not load offline is never published silently.

The versions are asv 0.6's, except stupidtable: its 1.0.1 is not on the npm
registry, so 1.1.3 (``stupid-table-plugin``, the same ``$.fn.stupidtable``)
is used. Downloads are kept in ``--cache`` (default ``~/.cache/numba-affine-asv``)
for the next run.

``--screenshot FILE`` then serves the folder on localhost and takes a
screenshot of ``--page`` (default: the forward benchmark's graph) with
headless Chromium (Debian's ``chromium`` package).
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import http.server
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = "https://registry.npmjs.org"

#: CDN address in asv's page -> (npm package, version, file in the package)
VENDORED = {
    "https://code.jquery.com/jquery-3.3.1.min.js": ("jquery", "3.3.1", "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": ("flot", "0.8.3", "jquery.flot.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js": ("flot", "0.8.3", "jquery.flot.time.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js": ("flot", "0.8.3", "jquery.flot.selection.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js": ("flot", "0.8.3", "jquery.flot.categories.js"),
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js": ("flot-orderbars", "1.0.0", "js/jquery.flot.orderBars.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js": ("stupid-table-plugin", "1.1.3", "stupidtable.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": ("blueimp-md5", "2.19.0", "js/md5.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js": ("bootstrap", "3.1.1", "dist/js/bootstrap.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css": ("bootstrap", "3.1.1", "dist/css/bootstrap.min.css"),
}
#: files a vendored file refers to by a relative path (bootstrap's css: its fonts)
ALSO = {("bootstrap", "3.1.1"): ["dist/fonts/"]}

_TAG = re.compile(r'<(script|link)\b[^>]*?(?:src|href)="(https?://[^"]+)"[^>]*>')


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def package(name: str, version: str, cache: Path) -> tarfile.TarFile:
    """The npm package's tarball (from the cache, or downloaded and checked)."""
    path = cache / f"{name}-{version}.tgz"
    if not path.exists():
        meta = json.loads(_get(f"{REGISTRY}/{name}/{version}"))
        data = _get(meta["dist"]["tarball"])
        algo, _, digest = meta["dist"]["integrity"].partition("-")
        if base64.b64encode(hashlib.new(algo, data).digest()).decode() != digest:
            raise RuntimeError(f"{name}@{version}: the tarball does not match the registry's {algo} integrity")
        cache.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return tarfile.open(fileobj=io.BytesIO(path.read_bytes()), mode="r:gz")


def vendor(html_dir: Path, cache: Path) -> list[Path]:
    """Copy the libraries into ``html_dir/vendor`` and rewrite every page; returns the pages changed."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for name, version, member in VENDORED.values():
        wanted.setdefault((name, version), set()).add(member)
    for (name, version), members in wanted.items():
        prefixes = tuple(ALSO.get((name, version), []))
        with package(name, version, cache) as tar:
            for info in tar.getmembers():
                inner = info.name.split("/", 1)[1]  # npm tarballs hold package/...
                if info.isfile() and (inner in members or inner.startswith(prefixes)):
                    target = html_dir / "vendor" / f"{name}-{version}" / inner
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(tar.extractfile(info).read())
                    members.discard(inner)
        if members:
            raise RuntimeError(f"{name}@{version} has no {sorted(members)}")

    changed = []
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        rel = Path(*[".."] * (len(page.relative_to(html_dir).parts) - 1))

        def local(m: re.Match) -> str:
            kind, url = m.group(1), m.group(2)
            if url not in VENDORED:
                return m.group(0)
            name, version, member = VENDORED[url]
            href = (rel / "vendor" / f"{name}-{version}" / member).as_posix()
            if kind == "script":
                return f'<script src="{href}" onerror="js_load_failure()">'
            return f'<link rel="stylesheet" href="{href}">'

        new = _TAG.sub(local, text)
        left = [m.group(2) for m in _TAG.finditer(new)]
        if left:
            raise RuntimeError(f"{page} still loads {left}: add them to VENDORED")
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed.append(page)
    return changed


def screenshot(html_dir: Path, page: str, out: Path, size: str) -> None:
    """Serve ``html_dir`` on localhost and save a headless Chromium screenshot of ``page``."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise RuntimeError("no chromium: install Debian's package (apt-get install chromium)")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(html_dir))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/{page}"
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={out.parent / '.chromium-profile'}", "--hide-scrollbars",
             f"--window-size={size}", "--virtual-time-budget=15000", f"--screenshot={out.resolve()}", url],
            check=True, capture_output=True, timeout=180,
        )
        server.shutdown()
    shutil.rmtree(out.parent / ".chromium-profile", ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-publish", action="store_true", help="vendor an already published folder")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "numba-affine-asv")
    parser.add_argument("--screenshot", type=Path, metavar="FILE.png")
    parser.add_argument("--page", default="#bench_affine.Forward.time_affine_forward")
    parser.add_argument("--size", default="1400,1000")
    args = parser.parse_args(argv)
    conf = json.loads("\n".join(line for line in (ROOT / "asv.conf.json").read_text().splitlines()
                                if not line.lstrip().startswith("//")))
    html_dir = ROOT / conf.get("html_dir", "html")
    if not args.no_publish:
        subprocess.run(["asv", "publish"], cwd=ROOT, check=True)
    changed = vendor(html_dir, args.cache)
    print(f"{html_dir}: {len(changed)} page(s) now load their libraries from vendor/")
    if args.screenshot:
        screenshot(html_dir, args.page, args.screenshot, args.size)
        print(f"screenshot of {args.page}: {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
