"""make install and make deb produce what an operator installs. The
documentation's links resolve inside the repository."""

import glob
import os
import re
import subprocess

from conftest import ROOT


def run(*cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, **kw)


def test_make_install_tree(tmp_path):
    r = run("make", "install", f"DESTDIR={tmp_path}", "PREFIX=/usr")
    assert r.returncode == 0, r.stderr
    for f in ["usr/sbin/edgegate", "usr/share/man/man8/edgegate.8",
              "etc/edgegate/edgegate.conf", "lib/systemd/system/edgegate.service"]:
        assert (tmp_path / f).is_file(), f
    assert os.access(tmp_path / "usr/sbin/edgegate", os.X_OK)
    unit = (tmp_path / "lib/systemd/system/edgegate.service").read_text()
    assert "ExecStart=/usr/sbin/edgegate -f -c /etc/edgegate/edgegate.conf" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    # The example configuration is valid as shipped.
    r = subprocess.run([str(tmp_path / "usr/sbin/edgegate"), "-t", "-c",
                        str(tmp_path / "etc/edgegate/edgegate.conf")], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout.strip() == "configuration ok", r.stderr
    r = subprocess.run(["man", "-l", str(tmp_path / "usr/share/man/man8/edgegate.8")],
                       capture_output=True, text=True, env={**os.environ, "MANWIDTH": "80"})
    assert "edge routing gateway" in r.stdout


def test_make_deb(tmp_path):
    r = run("make", "deb")
    assert r.returncode == 0, r.stderr
    deb = sorted(glob.glob(os.path.join(ROOT, "build", "edgegate_0.1.0_*.deb")))[-1]
    info = subprocess.run(["dpkg-deb", "-f", deb], capture_output=True, text=True).stdout
    assert "Package: edgegate" in info and "Version: 0.1.0" in info
    assert "libev4" in info and "libhiredis0.14" in info and "libc-ares2" in info
    files = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True).stdout
    for f in ["./usr/sbin/edgegate", "./etc/edgegate/edgegate.conf",
              "./lib/systemd/system/edgegate.service", "./usr/share/man/man8/edgegate.8.gz"]:
        assert f in files, f
    subprocess.run(["dpkg-deb", "-x", deb, str(tmp_path)], check=True)
    out = subprocess.run([str(tmp_path / "usr/sbin/edgegate"), "-v"], capture_output=True,
                         text=True).stdout
    assert out.strip() == "edgegate 0.1.0"


# ---- documentation ----

# Inline links [text](target "title") and reference definitions [name]: target.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)


def test_doc_links_resolve():
    """Every relative link in README.md and docs/*.md names a file of the
    repository (the contract included: docs/SPEC.md), and every #anchor a
    heading of its file."""
    docs = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs",
                                                                             "*.md")))
    assert os.path.join(ROOT, "docs", "SPEC.md") in docs
    bad = []
    for doc in docs:
        text = open(doc, encoding="utf-8").read()
        for target in (a or b for a, b in LINK.findall(text)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, mailto:, ...
                continue
            path, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
            if not dest.startswith(ROOT + os.sep) or not os.path.exists(dest):
                bad.append(f"{os.path.relpath(doc, ROOT)}: {target}")
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                bad.append(f"{os.path.relpath(doc, ROOT)}: {target} (no such heading)")
    assert bad == []
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert "../shared" not in readme


def anchors(md):
    """GitHub's anchors for the headings of MD."""
    out = set()
    for line in open(md, encoding="utf-8"):
        m = re.match(r"#+\s+(.*)", line)
        if m:
            a = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(a)
    return out
