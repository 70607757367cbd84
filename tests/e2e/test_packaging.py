"""make install and make deb produce what an operator installs."""

import glob
import os
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
