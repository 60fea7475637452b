"""The dashboard in a real browser: headless Chromium driven by Playwright.

Debian's ``chromium`` (``apt-get install chromium``, as ``.ci/run`` does) is
used through Playwright's ``executable_path``: no browser is downloaded. Each
test saves a screenshot of every page it visits in its own output directory
(``tmp_path``); with ``SECTOR_DASHBOARD_SCREENSHOT=docs/dashboard.png`` in the
environment, the overview of a busy cluster is also written there - that is
the picture in the README.

Nothing waits by sleeping: Playwright's assertions poll the page for a state
with a deadline (a dead slave must show within the slave timeout plus one
poll of the page).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sector.client import Client
from sector.cluster import LocalCluster
from tests.support import PASSWORD, USER, admin, connect, root_password, wait_until

from .test_app import FAMILIES, add_user

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = playwright_api.expect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(
        "Chromium is not installed (apt-get install chromium, as .ci/run does)",
        allow_module_level=True,
    )

#: Chromium as root in a container: no sandbox, no GPU, nothing fetched in the background.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1360, "height": 480}
#: The page polls its live block every second (web/app.py POLL_INTERVAL_MS).
POLL = 1.0


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_api.Browser]:
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: playwright_api.Browser) -> Iterator[playwright_api.Page]:
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    yield opened
    context.close()


def log_in(page: playwright_api.Page, url: str, user: str, password: str) -> None:
    page.goto(url)
    expect(page).to_have_url(url + "login?next=/")
    page.fill("#user", user)
    page.fill("#password", password)
    page.click("button[type=submit]")


def shoot(page: playwright_api.Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000  # a rendered page, not an empty one
    return path


def fill_with_files(client: Client, tmp_path: Path) -> None:
    """Something to look at: a few directories and files of several sizes."""
    for number, size in enumerate((1_500, 250_000, 3_000_000, 42)):
        local = tmp_path / f"sample{number}"
        local.write_bytes(os.urandom(size))
        client.upload(local, f"/data/run{number % 2}/sample{number}.bin")
    (tmp_path / "hello.txt").write_text("hello, Sector\n")
    client.upload(tmp_path / "hello.txt", "/data/hello.txt")


def test_an_administrator_watches_the_cluster_and_sees_a_killed_slave_turn_dead(
    make_cluster: Callable[..., LocalCluster], page: playwright_api.Page, tmp_path: Path
) -> None:
    # one replica per file: the killed slave's files have none left, as the page shows
    cluster = make_cluster(slaves=3, replicas=1)
    client = connect(cluster)
    root = admin(cluster)  # sysinfo shows slaves to administrators only
    fill_with_files(client, tmp_path)
    url = cluster.dashboard_url

    log_in(page, url, "root", root_password(cluster))
    expect(page).to_have_url(url)
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator('[data-figure="live"]')).to_have_text("3")
    expect(page.locator('[data-figure="files"]')).to_have_text("5")
    for _ in range(300):  # traffic for the request rates (worked out at each poll)
        client.stat("/data/hello.txt")
        client.ls("/data")
    expect(page.locator("#requests")).to_contain_text("stat")
    overview = shoot(page, tmp_path, "overview")
    wanted = os.environ.get("SECTOR_DASHBOARD_SCREENSHOT")
    if wanted:
        Path(wanted).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(overview, wanted)

    page.click("nav >> text=Slaves")
    rows = page.locator("#slave-table tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator('tr[data-state="live"]')).to_have_count(3)
    addresses = {s["address"] for s in root.sysinfo()["slaves"]}
    assert set(page.locator("td.address").all_inner_texts()) == addresses
    shoot(page, tmp_path, "slaves")

    page.click("nav >> text=Files")
    expect(page).to_have_url(url + "browse")
    page.click('tr[data-entry="data"] a')
    page.click('tr[data-entry="hello.txt"] a')
    expect(page).to_have_url(url + "browse/data/hello.txt")
    holder = client.stat("/data/hello.txt").slaves[0]
    (holder_id,) = [s["id"] for s in root.sysinfo()["slaves"] if s["address"] == holder]
    expect(page.locator(f'#replicas tr[data-replica="{holder_id}"]')).to_have_attribute(
        "data-state", "live"
    )
    expect(page.locator('[data-figure="live-replicas"]')).to_have_text("1")
    shoot(page, tmp_path, "file")
    page.click("#up")
    expect(page.locator("#listing")).to_be_visible()
    shoot(page, tmp_path, "directory")

    # Kill the slave holding hello.txt and watch the open pages change, with no reload.
    page.click("nav >> text=Slaves")
    page.evaluate("window.stillTheSamePage = true")
    victim = next(
        p.name
        for p in cluster.processes
        if p.name.startswith("slave")
        and (cluster.layout.slave_dir(int(p.name[5:])) / "slave.id").read_text().strip()
        == holder_id
    )
    cluster.stop_process(victim, kill=True)
    deadline_ms = (cluster.slave_timeout + 2 * POLL + 2) * 1000
    dead = page.locator(f'tr[data-slave="{holder_id}"]')
    expect(dead).to_have_attribute("data-state", "dead", timeout=deadline_ms)
    expect(page.locator('tr[data-state="live"]')).to_have_count(2)
    assert page.evaluate("window.stillTheSamePage") is True  # updated in place
    shoot(page, tmp_path, "slaves-one-dead")

    page.goto(url + "browse/data/hello.txt")
    expect(page.locator(f'#replicas tr[data-replica="{holder_id}"]')).to_have_attribute(
        "data-state", "dead"
    )
    expect(page.locator('[data-figure="live-replicas"]')).to_have_text("0")

    page.click("nav >> text=Warnings and errors")
    expect(page.locator("#events")).to_contain_text(holder_id, timeout=deadline_ms)
    shoot(page, tmp_path, "events")

    page.click("nav >> text=Overview")
    expect(page.locator('[data-figure="dead"]')).to_have_text("1 dead")
    page.click("text=Log out")
    expect(page).to_have_url(url + "login")
    page.goto(url + "slaves")
    expect(page).to_have_url(url + "login?next=/slaves")
    client.close()
    root.close()


def test_a_user_sees_no_slave_addresses_and_only_the_paths_they_may_read(
    cluster: LocalCluster,
    client: Client,
    workdir: str,
    page: playwright_api.Page,
    tmp_path: Path,
) -> None:
    name = f"browser{abs(hash(workdir)) % 10**6}"
    mine = f"{workdir}/{name}"
    (tmp_path / "f").write_bytes(b"mine")
    client.upload(tmp_path / "f", f"{mine}/notes.txt")
    client.upload(tmp_path / "f", f"{workdir}/private/secret.txt")
    add_user(cluster, name, "pw-" + name, read=[mine])

    log_in(page, cluster.dashboard_url, name, "pw-" + name)
    expect(page.locator("#user")).to_have_text(name)
    page.click("nav >> text=Slaves")
    expect(page.locator('tr[data-state="live"]')).to_have_count(3)
    text = page.inner_text("main")
    with admin(cluster) as root:
        known = root.sysinfo()["slaves"]
    for slave in known:
        assert slave["address"] not in text and slave["id"] not in text
    expect(page.locator("td.address")).to_have_count(0)
    shoot(page, tmp_path, "slaves-as-user")

    page.click("nav >> text=Files")
    expect(page.locator("tr[data-entry]")).to_have_count(1)  # only the way in: /tests
    page.goto(cluster.dashboard_url + "browse" + workdir)
    expect(page.locator(f'tr[data-entry="{name}"]')).to_have_count(1)
    expect(page.locator('tr[data-entry="private"]')).to_have_count(0)
    wait_until(  # its second replica follows the upload in the background
        lambda: len(client.stat(f"{mine}/notes.txt").slaves) == 2, what="two replicas"
    )
    page.click(f'tr[data-entry="{name}"] a')
    page.click('tr[data-entry="notes.txt"] a')
    expect(page.locator("#replicas tr[data-replica]")).to_have_count(2)
    expect(page.locator("#replicas")).to_contain_text("slave ")
    shoot(page, tmp_path, "file-as-user")
    page.goto(cluster.dashboard_url + "browse" + workdir + "/private/secret.txt")
    expect(page.locator(".problem")).to_contain_text("you may not read this")
    page.click("nav >> text=Warnings and errors")
    expect(page.locator("main")).to_contain_text("Only administrators see the master's log")


def test_a_wrong_password_is_refused(
    cluster: LocalCluster, page: playwright_api.Page, tmp_path: Path
) -> None:
    log_in(page, cluster.dashboard_url, USER, "not-" + PASSWORD)
    expect(page.locator("#problem")).to_have_text("Wrong user name or password.")
    expect(page.locator("#password")).to_have_value("")
    expect(page.locator("#user")).to_have_value(USER)  # kept, to try again
    shoot(page, tmp_path, "login-refused")
    page.goto(cluster.dashboard_url)
    expect(page).to_have_url(cluster.dashboard_url + "login?next=/")


def test_metrics_in_the_browser_parse_as_prometheus_text(
    cluster: LocalCluster, page: playwright_api.Page
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    page.goto(cluster.dashboard_url + "metrics")  # no login needed (METRICS_AUTH is off)
    families = {f.name for f in text_string_to_metric_families(page.inner_text("body") + "\n")}
    assert families >= FAMILIES, sorted(FAMILIES - families)
