"""The dashboard over plain HTTP, against the real masters of test clusters.

What a browser is sent - statuses, redirects, cookies, refusals - checked
before any browser runs (``test_browser.py`` drives Chromium through it).
"""

from __future__ import annotations

import base64
import http.cookiejar
import json
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sector import provision
from sector.client import Client
from sector.cluster import ClusterError, Layout, LocalCluster, write_conf
from sector.master.users import hash_password
from tests.support import PASSWORD, USER, admin, root_password, wait_until

from .client import WebClient

FAMILIES = {
    "sector_master_request_duration_seconds",
    "sector_master_request_errors",
    "sector_master_logins",
    "sector_slaves",
    "sector_capacity_bytes",
    "sector_free_bytes",
    "sector_stored_bytes",
    "sector_disks",
    "sector_files",
    "sector_directories",
    "sector_namespace_bytes",
    "sector_open_write_leases",
    "sector_slave_up",
    "sector_slave_received_bytes",
    "sector_slave_sent_bytes",
    "sector_slave_free_bytes",
    "sector_slave_stored_bytes",
    "sector_slave_heartbeat_age_seconds",
    "sector_master_start_time_seconds",
}


def add_user(cluster: LocalCluster, name: str, password: str, read: list[str]) -> None:
    """A user file the master picks up at the next login (conf/users is reread)."""
    user = provision.UserFile(name, hash_password(password), read=read)
    provision.write_file(cluster.layout.conf / "users" / name, user.text(), secret=True)


def metrics(web: WebClient) -> dict[str, dict[tuple, float]]:
    """family -> {(sample name, sorted labels): value} of one scrape."""
    answer = web.get("/metrics")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(answer.text):
        samples = found.setdefault(family.name, {})
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def web(cluster: LocalCluster) -> WebClient:
    assert cluster.dashboard_url.startswith("http://127.0.0.1:")
    return WebClient(cluster.dashboard_url)


# --- logging in and out -------------------------------------------------------------------


def test_every_page_asks_for_a_login_and_live_blocks_say_the_session_ended(
    web: WebClient,
) -> None:
    for path in ("/", "/slaves", "/browse/tests", "/events"):
        answer = web.get(path)
        assert answer.status == 303
        assert answer.location == "/login?next=" + path
    answer = web.get("/live/slaves")
    assert (answer.status, json.loads(answer.text)) == (401, {"session": "ended"})
    assert web.get("/login").status == 200


def test_a_login_opens_a_session_cookie_only_the_dashboard_can_use(web: WebClient) -> None:
    answer = web.login(USER, PASSWORD, next_path="/slaves")
    assert (answer.status, answer.location) == (303, "/slaves")
    (cookie,) = [c for c in answer.cookies() if c.startswith("sector_session=")]
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) >= 43  # 32 random bytes, base64
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert "secure" not in attributes  # plain HTTP here: the TLS test checks Secure
    page = web.get("/slaves")
    assert page.status == 200 and "Log out" in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert page.headers["Cache-Control"] == "no-store"
    live = web.get("/live/slaves")
    assert live.status == 200 and 'data-state="live"' in json.loads(live.text)["live"]

    other = WebClient(web.base)  # someone else, guessing
    other.jar.set_cookie(_cookie("sector_session", "x" * 43))
    assert other.get("/").status == 303


def test_logout_needs_the_pages_own_token_and_ends_the_session(web: WebClient) -> None:
    web.login(USER, PASSWORD)
    page = web.get("/")
    assert web.post("/logout", {"csrf": "forged"}).status == 403
    assert web.get("/").status == 200  # still logged in
    answer = web.post("/logout", {"csrf": page.field("csrf")})
    assert (answer.status, answer.location) == (303, "/login")
    assert web.get("/").status == 303


def test_a_login_form_from_elsewhere_is_refused(web: WebClient, cluster: LocalCluster) -> None:
    bare = {"user": USER, "password": PASSWORD, "next": "/"}
    assert web.post("/login", bare).status == 403  # no form token: not our form
    form = web.get("/login")
    forged = {**bare, "token": form.field("token")}
    assert web.post("/login", forged, {"Origin": "http://evil.example"}).status == 403
    assert web.cookie("sector_session") is None
    answer = web.post("/login", forged, {"Origin": cluster.dashboard_url.rstrip("/")})
    assert answer.status == 303


def test_after_a_login_only_a_path_on_the_dashboard_is_followed(web: WebClient) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", ""):
        assert web.login(USER, PASSWORD, next_path=target).location == "/"


def test_a_wrong_password_and_an_unknown_user_get_one_answer_and_are_counted(
    web: WebClient,
) -> None:
    def refused() -> float:
        key = ("sector_master_logins_total", (("interface", "dashboard"), ("result", "refused")))
        return metrics(web)["sector_master_logins"][key]

    before = refused()
    for user, password in ((USER, "wrong"), ("nobody-here", PASSWORD)):
        answer = web.login(user, password)
        assert answer.status == 401
        assert "Wrong user name or password." in answer.text
        assert web.cookie("sector_session") is None
    assert refused() == before + 2


# --- what a user sees --------------------------------------------------------------------


def test_a_user_browses_to_a_file_and_sees_its_replicas(
    web: WebClient, cluster: LocalCluster, client: Client, workdir: str, tmp_path: Path
) -> None:
    (tmp_path / "data.bin").write_bytes(b"x" * 5000)
    client.upload(tmp_path / "data.bin", f"{workdir}/sub/data.bin")
    web.login("root", root_password(cluster))
    listing = web.get(f"/browse{workdir}/sub")
    assert listing.status == 200
    assert 'data-entry="data.bin"' in listing.text and "4.9K" in listing.text
    wait_until(  # the second replica follows the upload in the background
        lambda: len(client.stat(f"{workdir}/sub/data.bin").slaves) == 2, what="two replicas"
    )
    details = web.get(f"/browse{workdir}/sub/data.bin")
    holders = client.stat(f"{workdir}/sub/data.bin").slaves
    assert details.status == 200 and 'data-figure="live-replicas">2<' in details.text
    with admin(cluster) as root:  # only administrators see slaves in sysinfo
        slave_ids = {s["id"]: s["address"] for s in root.sysinfo()["slaves"]}
    for holder in [i for i, address in slave_ids.items() if address in holders]:
        assert f'data-replica="{holder}" data-state="live"' in details.text  # admins see ids
    assert web.get(f"/browse{workdir}/missing").status == 404
    assert web.get("/browse/a%00b").status == 400


def test_a_user_sees_slaves_without_their_addresses_and_only_the_paths_they_may_read(
    cluster: LocalCluster, client: Client, workdir: str, tmp_path: Path
) -> None:
    name = f"reader{abs(hash(workdir)) % 10**6}"
    mine, theirs = f"{workdir}/{name}", f"{workdir}/other"
    (tmp_path / "f").write_bytes(b"data")
    client.upload(tmp_path / "f", f"{mine}/f")
    client.upload(tmp_path / "f", f"{theirs}/secret")
    add_user(cluster, name, "pw-of-reader", read=[mine])
    web = WebClient(cluster.dashboard_url)
    assert web.login(name, "pw-of-reader").status == 303

    slaves = web.get("/slaves").text
    with admin(cluster) as root:
        known = root.sysinfo()["slaves"]
    addresses, ids = [s["address"] for s in known], [s["id"] for s in known]
    assert slaves.count('data-state="live"') == 3
    assert not any(a in slaves for a in addresses) and not any(i in slaves for i in ids)
    assert 'data-slave="slave 1"' in slaves

    top = web.get("/browse/")
    assert 'data-entry="tests"' in top.text
    assert top.text.count("data-entry=") == 1  # only the way to what they may read
    way = web.get(f"/browse{workdir}")
    assert f'data-entry="{name}"' in way.text and 'data-entry="other"' not in way.text
    own = web.get(f"/browse{mine}/f")
    assert own.status == 200 and 'data-replica="slave ' in own.text
    assert not any(a in own.text for a in addresses)
    assert web.get(f"/browse{theirs}").status == 403
    assert web.get(f"/browse{theirs}/secret").status == 403
    assert "Only administrators see the master" in web.get("/events").text


def test_administrators_see_the_masters_recent_warnings(cluster: LocalCluster) -> None:
    assert cluster.master_address is not None
    with socket.create_connection(cluster.master_address) as sock:  # not even TLS
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        sock.recv(100)
    web = WebClient(cluster.dashboard_url)
    web.login("root", root_password(cluster))

    def warned() -> bool:
        return "WARNING" in web.get("/events").text

    # the master logs the refused connection once its TLS handshake fails
    wait_until(warned, timeout=30, what="a warning on /events")


# --- /metrics ----------------------------------------------------------------------------


def test_metrics_need_no_login_and_have_every_family(
    web: WebClient, client: Client, workdir: str, tmp_path: Path
) -> None:
    (tmp_path / "m").write_bytes(b"m" * 100_000)
    client.upload(tmp_path / "m", f"{workdir}/m")
    client.download(f"{workdir}/m", tmp_path / "back")
    for _ in range(3):
        client.stat(f"{workdir}/m")
    with pytest.raises(FileNotFoundError):
        client.stat(f"{workdir}/none")

    scrape = metrics(web)
    assert scrape.keys() >= FAMILIES, sorted(FAMILIES - scrape.keys())
    stats = scrape["sector_master_request_duration_seconds"]
    assert stats[("sector_master_request_duration_seconds_count", (("op", "stat"),))] >= 4
    errors = scrape["sector_master_request_errors"]
    assert errors[("sector_master_request_errors_total", (("code", "E_NOEXIST"), ("op", "stat")))]
    assert scrape["sector_slaves"][("sector_slaves", (("state", "live"),))] == 3
    assert scrape["sector_disks"][("sector_disks", ())] == 1

    def caught_up() -> bool:
        """Slaves report their byte counters with their next heartbeat, and the namespace
        totals are reread at most every two seconds (master/status.py)."""
        now = metrics(web)
        received = sum(now["sector_slave_received_bytes"].values())
        sent = sum(now["sector_slave_sent_bytes"].values())
        files = now["sector_files"][("sector_files", ())]
        return received >= 100_000 and sent >= 100_000 and files >= 1

    wait_until(caught_up, what="slave byte counters and the file count on /metrics")


def test_a_master_with_tls_and_metrics_auth(
    make_cluster: Callable[..., LocalCluster], tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("tls-home")
    layout = Layout(home)
    write_conf(layout, port=0)
    master_conf = layout.conf / "master.conf"
    text = master_conf.read_text()
    for key in ("HTTP_TLS", "METRICS_AUTH"):
        text = provision.set_values(text, key, ["TRUE"])
    master_conf.write_text(text)
    cluster = LocalCluster(home=home, slaves=1, port=0, heartbeat=0.2, slave_timeout=2.0)
    with cluster:
        assert cluster.dashboard_url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(layout.cert))
        context.check_hostname = False  # the certificate names the host, not 127.0.0.1
        web = WebClient(cluster.dashboard_url, context)
        answer = web.login(USER, PASSWORD)
        assert answer.status == 303
        (cookie,) = [c for c in answer.cookies() if c.startswith("sector_session=")]
        assert "secure" in cookie.lower()

        scrape = web.get("/metrics")
        assert scrape.status == 401
        assert scrape.headers["WWW-Authenticate"] == 'Basic realm="sector metrics"'
        assert web.get("/metrics", _basic(USER, PASSWORD)).status == 403  # not an administrator
        assert web.get("/metrics", _basic("root", "wrong")).status == 401
        good = web.get("/metrics", _basic("root", root_password(cluster)))
        assert good.status == 200 and "sector_capacity_bytes" in good.text


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _cookie(name: str, value: str) -> http.cookiejar.Cookie:
    return http.cookiejar.Cookie(
        0, name, value, None, False, "127.0.0.1", False, False, "/", True, False, None, False,
        None, None, {},
    )  # fmt: skip


def test_a_taken_http_port_stops_the_master_saying_so(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    home = tmp_path_factory.mktemp("busy-home")
    layout = Layout(home)
    write_conf(layout, port=0)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        master_conf = layout.conf / "master.conf"
        master_conf.write_text(
            provision.set_values(master_conf.read_text(), "HTTP_PORT", [str(port)])
        )
        cluster = LocalCluster(home=home, slaves=0, port=0)
        with pytest.raises(ClusterError) as refused:
            cluster.start()
    assert f"HTTP_PORT 127.0.0.1:{port}: Address already in use" in str(refused.value)


def test_without_http_port_the_master_serves_no_dashboard(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    home = tmp_path_factory.mktemp("no-http-home")
    layout = Layout(home)
    write_conf(layout, port=0)
    master_conf = layout.conf / "master.conf"
    master_conf.write_text(provision.set_values(master_conf.read_text(), "HTTP_PORT", None))
    with LocalCluster(home=home, slaves=0, port=0) as cluster:
        assert cluster.master_address is not None
        assert cluster.dashboard_url == ""
        ready = (layout.master_home / "master.addr").read_text().split()
        assert len(ready) == 3  # host port pid: no URL after them
