"""The status page, made for an outage: rendered on the server (it reads
without JavaScript), a banner of what is wrong now, rates with sparklines,
where each listener's new sessions go, each server's last check with its
cause; headless Chromium screenshots at 390 and 1280 px during an outage.
The screenshots stay in the test's directory (stats-390.png,
stats-1280.png) for a person to look at."""

import re
import shutil
import signal
import struct
import subprocess

from conftest import free_port, http_get, stats, wait_until, dc_state

FAST = "check http /health interval 100ms timeout 150ms rise 2 fall 2;"


def chromium_flags(env):
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={env.path('chromium')}"]


def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium is installed by make test (tools/deps.sh)"
    return path


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def page(sp):
    status, headers, body = http_get(sp, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    return body.decode()


def test_outage_page_at_phone_and_desktop_widths(env):
    ams1, ams2, fra, lon = (env.dcsim("ams"), env.dcsim("ams"), env.dcsim("fra"),
                            env.dcsim("lon"))
    port, raw, sp = free_port(), free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\n"
                f"datacenter ams {{ server {ams1.addr}; server {ams2.addr}; {FAST} }}\n"
                f"datacenter fra {{ server {fra.addr}; {FAST} }}\n"
                f"datacenter lon {{ priority 2; server {lon.addr}; {FAST} }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; session cookie sid; }}\n"
                f"listener raw {{ listen 127.0.0.1:{raw}; mode tcp; datacenters fra lon; }}\n",
                wait=[port, raw])
    wait_until(lambda: dc_state(sp, "fra")["rtt_ms"] is not None, what="checks")
    for i in range(40):
        http_get(port, f"/p{i}")
    for i in range(4):
        http_get(port, "/status/503")
    fra.send(signal.SIGSTOP)  # gray: accepts connections, answers nothing
    wait_until(lambda: not dc_state(sp, "fra")["healthy"], what="fra down")

    # Without JavaScript: the page as served says it all.
    html = page(sp)
    assert re.search(r'<section class="banner bad" id="banner" role="alert">', html)
    assert re.search(r"<b>Datacenter fra is down</b> for \d+ s: 0 of 1 servers up, 1 needed; "
                     rf"{fra.addr}: timeout after \d+ ms", html), html
    assert '<article class="card down" id="dc-fra">' in html
    assert re.search(r'<span class="bad">timeout after \d+ ms</span>', html)
    assert '<noscript><meta http-equiv="refresh"' in html
    assert html.count('<svg class="spark"') == 3

    # What was measured before is not shown as if it were now.
    st = stats(sp)
    d = {x["name"]: x for x in st["datacenters"]}
    assert d["fra"]["rtt_ms"] is None and d["fra"]["servers"][0]["rtt_ms"] is None
    assert d["ams"]["rtt_ms"] is not None
    assert 'edgegate_datacenter_rtt_seconds{dc="fra"}' not in http_get(sp, "/metrics")[2].decode()
    last = d["fra"]["servers"][0]["last_check"]
    assert last["ok"] is False and last["cause"] == "timeout"
    assert re.match(r"timeout after \d+ ms$", last["result"]) and last["duration_ms"] >= 150
    lsn = {x["name"]: x for x in st["listeners"]}
    assert lsn["web"]["new_sessions"]["datacenter"] == "ams"
    assert lsn["raw"]["new_sessions"] == {"datacenter": "lon", "given_away": 0, "spill_to": None}

    url = f"http://127.0.0.1:{sp}/"
    for width, height in ((390, 1800), (1280, 1300)):
        shot = env.path(f"stats-{width}.png")
        subprocess.run([chromium(), *chromium_flags(env), f"--window-size={width},{height}",
                        f"--screenshot={shot}", url], capture_output=True, timeout=60)
        assert png_size(shot) == (width, height)
        # The page's script fetched it again and swapped it in, still right.
        dom = subprocess.run([chromium(), *chromium_flags(env), f"--window-size={width},{height}",
                              "--virtual-time-budget=2500", "--dump-dom", url],
                             capture_output=True, text=True, timeout=60).stdout
        assert "<b>Datacenter fra is down</b>" in dom and 'id="dc-fra"' in dom
        assert '<p id="stale" hidden="">' in dom


def test_last_check_says_why(env):
    ok, sick, plain = env.dcsim("ams"), env.dcsim("ams"), env.dcsim("tls", mode="echo")
    dead = free_port()
    sick.send(signal.SIGUSR1)  # /health answers 503
    port, sp = free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\n"
                f"datacenter ams {{ server {ok.addr}; server {sick.addr}; "
                f"server 127.0.0.1:{dead}; {FAST} }}\n"
                f"datacenter tls {{ server {plain.addr}; check tls interval 100ms; }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; }}\n", wait=[port])

    def checks():
        return {s["address"]: s["last_check"] for d in stats(sp)["datacenters"]
                for s in d["servers"]}
    wait_until(lambda: all(checks().values()), what="a check of every server")
    c = checks()
    assert (c[ok.addr]["ok"], c[ok.addr]["cause"], c[ok.addr]["result"]) == (True, "ok",
                                                                             "status 200")
    assert (c[sick.addr]["cause"], c[sick.addr]["result"]) == ("status", "status 503")
    assert (c[f"127.0.0.1:{dead}"]["cause"], c[f"127.0.0.1:{dead}"]["result"]) == ("refused",
                                                                                  "refused")
    assert c[plain.addr]["cause"] == "tls" and c[plain.addr]["result"].startswith("TLS error")
    for r in c.values():
        assert r["duration_ms"] >= 0 and 0 <= r["age_s"] < 2
    html = page(sp)
    for text in ("status 200", "status 503", "refused", "TLS error"):
        assert f'">{text}' in html, text


def test_up_and_down_durations_survive_a_reload(env):
    a = env.dcsim("ams")
    port, sp, dead, dead2 = free_port(), free_port(), free_port(), free_port()
    conf = (f"stats 127.0.0.1:{sp};\n"
            f"datacenter ams {{ server {a.addr}; server 127.0.0.1:{dead}; {FAST} }}\n"
            f"datacenter gone {{ server 127.0.0.1:{dead2}; {FAST} }}\n"
            f"listener web {{ listen 127.0.0.1:{port}; }}\n")
    gw = env.gateway(conf, wait=[port])
    wait_until(lambda: not dc_state(sp, "gone")["healthy"], what="gone down")
    wait_until(lambda: dc_state(sp, "gone")["since_s"] >= 3, timeout=6, what="3 s down")
    before = {d["name"]: d for d in stats(sp)["datacenters"]}
    with open(gw.conf, "w") as f:
        f.write(conf + f"listener more {{ listen 127.0.0.1:{free_port()}; }}\n")
    gw.send(signal.SIGHUP)
    wait_until(lambda: stats(sp)["generation"] == 2, what="reload")
    after = {d["name"]: d for d in stats(sp)["datacenters"]}
    for name in ("ams", "gone"):
        assert after[name]["since_s"] >= before[name]["since_s"] >= 3, name
        assert after[name]["transitions_total"] == before[name]["transitions_total"], name
        for s0, s1 in zip(before[name]["servers"], after[name]["servers"]):
            assert s1["since_s"] >= s0["since_s"] >= 2 and s1["up"] == s0["up"]
            assert s1["last_check"] is not None
    html = page(sp)
    assert re.search(r"<b>Datacenter gone is down</b> for [2-9] s", html), html


def test_rates_and_where_new_sessions_go(env):
    a, b = env.dcsim("ams"), env.dcsim("fra")
    dead, dead2 = free_port(), free_port()
    port, closed, sp = free_port(), free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\n"
                f"datacenter ams {{ server {a.addr}; server 127.0.0.1:{dead}; {FAST} }}\n"
                f"datacenter fra {{ priority 2; server {b.addr}; {FAST} }}\n"
                f"datacenter gone {{ server 127.0.0.1:{dead2}; {FAST} }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; datacenters ams fra; }}\n"
                f"listener closed {{ listen 127.0.0.1:{closed}; datacenters gone; "
                "hold_timeout 0; }\n", wait=[port, closed])
    wait_until(lambda: dc_state(sp, "ams")["servers_up"] == 1, what="one of ams down")
    wait_until(lambda: not dc_state(sp, "gone")["healthy"], what="gone down")
    # One of two servers up is under spill_threshold 70: 1 - 0.5 / 0.7 of new
    # sessions go to the next-nearest datacenter.
    web = {x["name"]: x for x in stats(sp)["listeners"]}["web"]["new_sessions"]
    assert web["datacenter"] == "ams" and web["spill_to"] == "fra"
    assert abs(web["given_away"] - 0.286) < 0.001
    for i in range(30):
        http_get(port, f"/r{i}")
    for i in range(5):
        assert http_get(port, "/status/503")[0] == 503  # the server's own
        assert http_get(closed, "/")[0] == 503  # the gateway's: no datacenter
    wait_until(lambda: stats(sp)["rates"]["errors"]["per_s_10s"] > 0, what="a sample")
    r = stats(sp)["rates"]
    assert r["requests"]["per_s_10s"] > 0 and r["requests"]["per_s_1m"] > 0
    assert r["http_5xx"]["per_s_10s"] > 0 and r["errors"]["per_s_10s"] > 0
    assert len(r["requests"]["last_60s"]) == 60
    wait_until(lambda: sum(stats(sp)["rates"]["requests"]["last_60s"]) > 0, timeout=3,
               what="a whole second sampled")
    html = page(sp)
    assert html.count('<div class="rate hot"') == 2  # 5xx and gateway errors
    assert re.search(r"<b>ams</b> <span class=\"warn\">\(29 % to fra\)</span>", html)
    assert "<b>ams gives away 29 % of new sessions</b> of web to fra" in html
    assert "<b>Listener closed has no healthy datacenter</b>" in html
    assert re.search(r'<td class="num err" data-label="5xx">\d+</td>', html)


def test_banner_names_ejected_servers_and_redis_down(env):
    a1, a2 = env.dcsim("ams"), env.dcsim("ams")
    port, sp, nothing = free_port(), free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\nredis 127.0.0.1:{nothing} {{ }}\n"
                f"datacenter ams {{ server {a1.addr}; server {a2.addr}; passive 5xx 2 eject 10s; }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; }}\n", wait=[port])
    for _ in range(4):
        http_get(port, "/status/503")
    wait_until(lambda: dc_state(sp, "ams")["servers_up"] == 1, what="one ejected")
    html = page(sp)
    assert re.search(r'<span class="warn">1 server down or ejected</span>', html)
    assert re.search(r"127\.0\.0\.1:\d+ of ams \(ejected after consecutive 5xx answers, "
                     r"for \d+ s\)", html)
    assert re.search(r'<span class="bad">ejected</span> for \d+ s', html)
    assert "<b>Redis is unreachable</b>" in html
    assert '<section class="banner warn"' in html  # nothing down for good: a warning
