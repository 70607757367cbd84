"""The status page, made for an outage: rendered on the server (it reads
without JavaScript), a banner of what is wrong now, rates with sparklines,
where each listener's new sessions go, each server's last check with its
cause, what operators did; headless Chromium screenshots at 390 and 1280 px
during an outage and under operator state. The screenshots stay in the
test's directory (stats-390.png, stats-1280.png, stats-operator-390.png)
for a person to look at."""

import json
import re
import shutil
import signal
import struct
import subprocess
import time

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


def put(sp, path, body):
    """A change through the control API (from loopback: no token needed)."""
    status, _, raw = http_get(sp, path, method="PUT", body=json.dumps(body).encode(),
                              headers={"Content-Type": "application/json"})
    assert status == 200, raw
    return json.loads(raw)


def first_line(body):
    return body.decode().split("\n")[0]


def test_operator_state_tags_weight_changes_and_banner(env):
    a1, a2, f1, f2, lon = (env.dcsim("ams"), env.dcsim("ams"), env.dcsim("fra"),
                           env.dcsim("fra"), env.dcsim("lon"))
    port, sp = free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\n"
                f"datacenter ams {{ server {a1.addr}; server {a2.addr}; {FAST} }}\n"
                f"datacenter fra {{ server {f1.addr}; server {f2.addr}; {FAST} }}\n"
                f"datacenter lon {{ priority 2; server {lon.addr}; {FAST} }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; session cookie sid; }}\n",
                wait=[port, sp])
    wait_until(lambda: all(d["rtt_ms"] is not None for d in stats(sp)["datacenters"]),
               what="checks")
    html = page(sp)
    assert '<section class="banner ok"' in html and "tag admin" not in html
    assert "operator state is this gateway" in html and "No operator change yet." in html

    put(sp, "/control/dcs/ams", {"state": "drain", "drain_timeout": 300})
    put(sp, "/control/dcs/lon", {"state": "down"})
    put(sp, f"/control/dcs/fra/servers/{f1.addr}", {"state": "down"})
    put(sp, f"/control/dcs/fra/servers/{f2.addr}", {"weight": 3})
    wait_until(lambda: not dc_state(sp, "lon")["healthy"], what="lon down")
    html = page(sp)

    # Datacenters: a drain with its clock, a down, each with who said it.
    ams = html[html.index('id="dc-ams"'):html.index("</article>", html.index('id="dc-ams"'))]
    assert re.search(r'<span class="tag admin" title="by 127\.0\.0\.1:\d+, [\d.]+ s ago">'
                     r"DRAINING: sessions leave in (?:5 min 0|4 min 5\d) s</span>", ams), ams
    assert "nearest of priority" not in ams  # it takes no new session
    lon_card = html[html.index('id="dc-lon"'):html.index("</article>", html.index('id="dc-lon"'))]
    assert ">DOWN by an operator</span>" in lon_card
    # Servers: the operator's state, the weight with the configured one.
    fra = html[html.index('id="dc-fra"'):html.index("</article>", html.index('id="dc-fra"'))]
    row = {addr: re.search(rf"<tr class=\"\w+\"><th scope=\"row\" data-label=\"server\">"
                           rf"<span class=\"dot \w+\"></span>{addr}</th>.*?</tr>", fra).group(0)
           for addr in (f1.addr, f2.addr)}
    assert '<span class="tag admin">down by an operator</span>' in row[f1.addr]
    assert "(operator: down)" not in row[f1.addr]  # the tag says it
    assert re.search(r'<td class="num warn" data-label="weight" title="set by an operator; '
                     r'configured: 1">3 \(1\)</td>', row[f2.addr]), row[f2.addr]
    assert "tag admin" not in row[f2.addr]
    assert '<td class="num wide" data-label="weight">1</td>' in row[f1.addr]

    # The banner: what operators did is a warning, not an outage.
    assert '<section class="banner warn"' in html
    assert "<b>Datacenter lon is down</b>" not in html
    assert re.search(r"<b>Datacenter ams is drained by an operator</b>: new sessions go "
                     r"elsewhere; sessions pinned to it leave in (?:5 min 0|4 min 5\d) s \(by "
                     r"127\.0\.0\.1:\d+, [\d.]+ s ago\)", html), html
    assert "<b>Datacenter lon is down by an operator</b>" in html
    assert f"<b>1 server down by an operator</b>: {f1.addr} of fra (down)" in html
    assert "server down</span>" not in html  # not counted again as a failure

    # New sessions: where routing sends them, and the page says the same.
    assert stats(sp)["listeners"][0]["new_sessions"]["datacenter"] == "fra"
    assert first_line(http_get(port, headers={"Cookie": "sid=new-one"})[2]) == "dc=fra"
    assert re.search(r'data-label="new sessions"><b>fra</b></td>', html)

    # The changes, newest first, with who made them.
    op = html[html.index("<h2>Operator</h2>"):html.index("<h2>Session affinity</h2>")]
    assert "operator state is this gateway" in op
    changes = re.findall(r'<td data-label="change">(.*?)</td><td data-label="by">'
                         r"127\.0\.0\.1:\d+</td>", op)
    assert changes == [f"server {f2.addr} of fra: ready, weight 3",
                       f"server {f1.addr} of fra: down",
                       "datacenter lon: down",
                       "datacenter ams: drain (pinned sessions leave in 300s)"], op

    url = f"http://127.0.0.1:{sp}/"
    shot = env.path("stats-operator-390.png")
    subprocess.run([chromium(), *chromium_flags(env), "--window-size=390,2400",
                    f"--screenshot={shot}", url], capture_output=True, timeout=60)
    assert png_size(shot) == (390, 2400)

    # The drain's clock runs out: pinned sessions leave too.
    put(sp, "/control/dcs/ams", {"state": "drain", "drain_timeout": 0})
    wait_until(lambda: dc_state(sp, "ams")["drained"], what="drained")
    html = page(sp)
    assert ">DRAINED: sessions leave</span>" in html
    assert "sessions pinned to it leave too (the drain's time ran out)" in html
    # Every datacenter drained or down: routing falls back to a drained one,
    # and the page says so.
    put(sp, "/control/dcs/fra", {"state": "drain"})
    html = page(sp)
    want = stats(sp)["listeners"][0]["new_sessions"]["datacenter"]
    assert want in ("ams", "fra")
    assert (f'<b>{want}</b> <span class="warn">(drained, but no other datacenter can take '
            f"them)</span>") in html
    assert "but listener web has no other datacenter: its new sessions still go there" in html
    assert first_line(http_get(port, headers={"Cookie": "sid=new-two"})[2]) == f"dc={want}"


def test_operator_words_from_the_fleet_are_escaped(env):
    """An origin comes from whoever writes the fleet's Redis: the page
    escapes it."""
    redis = env.redis()
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\nredis 127.0.0.1:{redis.port} {{ prefix e:; }}\n"
                f"datacenter ams {{ server {a.addr}; }}\n"
                f"datacenter fra {{ priority 2; server {b.addr}; }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; }}\n", wait=[port, sp])
    wait_until(lambda: stats(sp)["operator"]["fleet"]["subscribed"], what="subscribed")
    evil = '<img src=x onerror="alert(1)">&'
    now = time.time()
    rec = json.dumps({"state": "drain", "weight": None, "since": now, "until": now + 600,
                      "origin": evil})
    redis.client.hset("e:op:state", "dc:ams", rec)
    redis.client.publish("e:op:changes", f"dc:ams\n{rec}")
    wait_until(lambda: dc_state(sp, "ams")["admin"] == "drain", what="heard")
    html = page(sp)
    assert evil not in html and "<img" not in html
    assert ('title="by &lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;, ' in html), html
    assert "(by &lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;, " in html
    op = html[html.index("<h2>Operator</h2>"):html.index("<h2>Session affinity</h2>")]
    assert "Operator state is <b>fleet-wide</b> (Redis): connected and subscribed" in op
    assert re.search(r'<td data-label="change">datacenter ams: drain \(pinned sessions leave '
                     r'in 600s\)</td><td data-label="by">redis</td>', op), op
