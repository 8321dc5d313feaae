"""The household page in a real headless browser (Debian's chromium through Selenium): the pairing link's
token is kept and leaves the address bar; a concept is added from a file, shown with its photo, renamed,
re-described and forgotten; today's sightings show with their snapshots, and a question is answered from them;
on a phone-sized window. Markup another client stored shows as text and never runs."""

from __future__ import annotations

import shutil
import time

import pytest
from scenes import save, scene
from serve_support import fake_settings, jpeg, live_server, photo_files, png

from edge_rap.types import Box, Event

webdriver = pytest.importorskip("selenium.webdriver",
                                reason="the page test needs selenium (pip install 'edge_rap[serve-test]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromedriver: apt-get install chromium "
                                       "chromium-driver")


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3},
                                                        "userAgent": "Mozilla/5.0 (iPhone) Mobile"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def wait_for(check, what: str, timeout: float = 60.0):
    """Poll until `check()` is truthy (the page works asynchronously); the failure names what never came. It
    returns as soon as the page shows it: the deadline is generous for a busy machine's chromium."""
    end = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:  # the element is not there yet, or was just replaced
            value = None
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"the page never showed {what}")
        time.sleep(0.1)


def wait_for_card_photo(browser, name: str) -> None:
    """Until the card of `name` shows its photo, which the page fetches with the token after the card is shown."""
    wait_for(lambda: browser.execute_script(
        f"const i = document.querySelector(\".concept[data-name='{name}'] img\"); return i && i.naturalWidth"),
        f"{name}'s photo, fetched with the token")


def test_the_household_page_on_a_phone(browser, tmp_path):
    from selenium.webdriver.common.by import By

    snap = tmp_path / "snaps" / "1700000000000-0123abcd.jpg"
    snap.parent.mkdir()
    snap.write_bytes(jpeg(scene(9)))
    photo = save(tmp_path / "bo.png", scene(1))
    with live_server(fake_settings(tmp_path)) as live:
        browser.get(f"{live.url}/")
        wait_for(lambda: browser.find_element(By.ID, "token-form").is_displayed(), "the token form")
        browser.get(f"{live.url}/#token={live.token}")  # the pairing link
        wait_for(lambda: browser.find_element(By.ID, "add-form").is_displayed(), "the page after pairing")
        assert "token" not in browser.current_url
        assert browser.execute_script("return localStorage.getItem('edge-rap-token')") == live.token
        assert browser.execute_script("return window.innerWidth") == 390  # a phone's screen
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390  # no sideways scroll

        browser.find_element(By.ID, "add-name").send_keys("bo")
        browser.find_element(By.ID, "add-category").send_keys("dog")
        browser.find_element(By.ID, "add-description").send_keys("our Shiba Inu")
        browser.find_element(By.ID, "add-photos").send_keys(str(photo))
        browser.find_element(By.CSS_SELECTOR, "#add-form button[type=submit]").click()
        card = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".concept[data-name='bo']"), "bo's card")
        assert card.find_element(By.CSS_SELECTOR, ".description").text == "our Shiba Inu"
        wait_for_card_photo(browser, "bo")
        assert browser.execute_script(  # the card's size, in the screen's pixels, not the stored photo
            "const i = document.querySelector(\".concept[data-name='bo'] img\");"
            "return Math.max(i.naturalWidth, i.naturalHeight) <= Math.ceil(160 * devicePixelRatio)")
        assert all("?size=" in url for url in browser.execute_script(
            "return performance.getEntriesByType('resource').filter(e => e.name.includes('/photos/'))"
            ".map(e => e.name)"))
        with live.client() as c:
            assert [x["name"] for x in c.get("/api/concepts").json()] == ["bo"]

        card.find_element(By.CSS_SELECTOR, ".edit").click()
        name = card.find_element(By.CSS_SELECTOR, ".edit-name")
        name.clear()
        name.send_keys("bobo")
        card.find_element(By.CSS_SELECTOR, ".edit-description").send_keys(", black collar")
        card.find_element(By.CSS_SELECTOR, ".edit-form button[type=submit]").click()
        card = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".concept[data-name='bobo']"), "the rename")
        assert card.find_element(By.CSS_SELECTOR, ".description").text == "our Shiba Inu, black collar"

        live.home.events.add(Event("arrived", "bobo", "door", 1.0, time.time(), Box(0, 0, 10, 10), 0.9,
                                   "bobo is at the door", str(snap)))
        browser.refresh()
        wait_for(lambda: "bobo arrived (door): bobo is at the door" in browser.find_element(By.ID, "events").text,
                 "today's sighting")
        wait_for(lambda: browser.execute_script("const i = document.querySelector('#events img');"
                                                "return i && i.naturalWidth"), "the sighting's snapshot")
        browser.find_element(By.ID, "ask-question").send_keys("Where is Bobo?")
        browser.find_element(By.CSS_SELECTOR, "#ask-form button[type=submit]").click()
        wait_for(lambda: browser.find_element(By.ID, "ask-answer").text.startswith(
            "bobo is on the door camera now: I saw bobo arrive"), "the answer from the sightings")

        card = browser.find_element(By.CSS_SELECTOR, ".concept[data-name='bobo']")
        card.find_element(By.CSS_SELECTOR, ".forget").click()
        browser.switch_to.alert.accept()
        wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, ".concept[data-name='bobo']"), "the forgetting")
        with live.client() as c:
            assert c.get("/api/concepts").json() == [] and c.get("/api/events").json() == []

        browser.execute_script("localStorage.setItem('edge-rap-token', 'wrong')")
        browser.refresh()
        wait_for(lambda: browser.find_element(By.ID, "token-form").is_displayed(), "the token form for a bad token")
        assert "not accepted" in browser.find_element(By.ID, "status").text
    browser.find_element(By.ID, "token-input").send_keys(live.token)  # the device gone (a phone off its Wi-Fi)
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    wait_for(lambda: browser.find_element(By.ID, "status").text.startswith("Cannot reach the device"),
             "the device unreachable, said in words (not the browser's \"Failed to fetch\")")


def test_a_persons_face_is_chosen_by_tapping_it_and_photos_are_added_from_the_card(browser, settings, tmp_path):
    """A photo of two people, sent for one of them, comes back with their faces: the page shows the photo with a
    frame on each, and the face tapped is the one remembered. More photos are added from the concept's card."""
    from photos import photo, side_by_side
    from selenium.webdriver.common.by import By

    both = save(tmp_path / "both.png", side_by_side("astronaut", "grace_hopper"))
    alone = save(tmp_path / "grace.png", photo("grace_hopper"))
    with live_server(settings, fake=False) as live:
        browser.get(f"{live.url}/#token={live.token}")
        wait_for(lambda: browser.find_element(By.ID, "add-form").is_displayed(), "the page after pairing")
        browser.find_element(By.ID, "add-name").send_keys("grace")
        browser.find_element(By.ID, "add-category").send_keys("person")
        browser.find_element(By.ID, "add-photos").send_keys(str(both))
        assert browser.find_element(By.ID, "add-chosen").text == "1 photo chosen"  # not "1 photo(s)"
        browser.find_element(By.CSS_SELECTOR, "#add-form button[type=submit]").click()
        faces = wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#face-choice .face")) == 2
                         and browser.find_elements(By.CSS_SELECTOR, "#face-choice .face"), "the two faces to tap")
        # (said once the lists are fetched again: on a loaded machine after the faces are shown)
        wait_for(lambda: "tap the one" in browser.find_element(By.ID, "status").text, "the page asking for a tap")
        with live.client() as c:
            assert c.get("/api/concepts").json() == []
        right = max(faces, key=lambda f: f.rect["x"])
        assert right.rect["x"] > browser.find_element(By.CSS_SELECTOR, "#face-choice img").rect["width"] / 2 - 5
        right.click()
        card = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".concept[data-name='grace']"), "grace's card")
        assert not browser.find_element(By.ID, "face-choice").is_displayed()
        (face,) = live.home.memory.store.views(live.home.memory.get("grace").id, kind="face")
        assert face.box.x0 >= 300  # her face, the one tapped, not the astronaut's

        card.find_element(By.CSS_SELECTOR, ".more-photos").send_keys(str(alone))
        wait_for(lambda: live.home.memory.get("grace").views == 2, "the added photo")
        wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".concept[data-name='grace'] .photos img")) == 2,
                 "both photos on the card")


def test_the_first_visit_and_a_long_name_fit_a_phone(browser, tmp_path):
    """Before pairing only the token's form shows (not the button that forgets a token there is not); a name of
    64 letters without a space wraps on its card instead of widening the page past the phone's screen."""
    from selenium.webdriver.common.by import By

    long_name = "grandmas_favourite_blue_ceramic_teapot_with_the_chipped_lid_0123"
    with live_server(fake_settings(tmp_path)) as live:
        with live.client() as c:
            c.post("/api/concepts", data={"name": long_name}, files=photo_files(png(scene(1)))).raise_for_status()
        browser.get(f"{live.url}/")
        wait_for(lambda: browser.find_element(By.ID, "token-form").is_displayed(), "the token form")
        assert not browser.find_element(By.ID, "signout").is_displayed()
        browser.get(f"{live.url}/#token={live.token}")
        wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".concept .name").text == long_name, "the long name")
        assert browser.find_element(By.ID, "signout").is_displayed()
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390


def test_a_pairing_link_with_a_wrong_token_leaves_the_good_one_in_place(browser, tmp_path):
    """Any web page can open the device's address with `#token=...` (so can an old QR code): a wrong token there
    took the place of the good one, and the page forgot both (the household had to pair again on the device).
    It is kept only once the device accepts it, whether the link is followed in the page or opened afresh."""
    from selenium.webdriver.common.by import By

    with live_server(fake_settings(tmp_path)) as live:
        with live.client() as c:
            c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1)))).raise_for_status()
        browser.get(f"{live.url}/#token={live.token}")
        wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".concept .name").text == "bo", "bo's card")
        for opened in ("in the page", "afresh"):
            if opened == "afresh":
                browser.get("about:blank")
            browser.get(f"{live.url}/#token={'0' * 64}")
            wait_for(lambda: "link's token was not accepted" in browser.find_element(By.ID, "status").text,
                     f"the wrong link refused ({opened})")
            assert browser.execute_script("return localStorage.getItem('edge-rap-token')") == live.token
            assert "token" not in browser.current_url
            assert browser.find_element(By.CSS_SELECTOR, ".concept .name").text == "bo"
            assert not browser.find_element(By.ID, "token-form").is_displayed()


def test_on_a_slow_network_a_second_tap_sends_nothing_and_photos_are_fetched_once(browser, tmp_path):
    """On a phone's slow network the button tapped is disabled until its answer (a second tap sent the concept
    again, and the page then said its name was taken), and the lists' photos are fetched once, not again after
    every action (the page said "Working..." until all were fetched again, one after the other)."""
    from selenium.webdriver.common.by import By

    first, second = save(tmp_path / "bo.png", scene(1)), save(tmp_path / "mug.png", scene(2))
    with live_server(fake_settings(tmp_path)) as live:
        browser.get(f"{live.url}/#token={live.token}")
        wait_for(lambda: browser.find_element(By.ID, "add-form").is_displayed(), "the page after pairing")
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 300, "downloadThroughput": 200_000, "uploadThroughput": 100_000})
        for name, photo in (("bo", first), ("mug", second)):
            browser.find_element(By.ID, "add-name").send_keys(name)
            browser.find_element(By.ID, "add-photos").send_keys(str(photo))
            remember = browser.find_element(By.CSS_SELECTOR, "#add-form button[type=submit]")
            remember.click()
            assert remember.get_attribute("disabled")
            browser.execute_script("arguments[0].click()", remember)  # the second tap
            wait_for(lambda: browser.find_element(By.ID, "status").text == "Remembered.", f"{name} remembered")
            assert not remember.get_attribute("disabled")
        wait_for(lambda: browser.execute_script(
            "return [...document.querySelectorAll('.concept img')].filter(i => i.naturalWidth).length") == 2,
            "both photos")
        fetches = browser.execute_script("return performance.getEntriesByType('resource')"
                                         ".filter(e => e.name.includes('/photos/')).length")
        assert fetches == 2  # bo's photo was not fetched again when mug was added
        with live.client() as c:
            assert [x["name"] for x in c.get("/api/concepts").json()] == ["bo", "mug"]


def test_what_a_card_far_down_the_list_is_answered_shows_where_the_user_is(browser, tmp_path):
    """A photo refused from the 30th card's "Add photos" is said on screen, not at the top of the page where
    the phone's user, scrolled down to that card, cannot see it."""
    from selenium.webdriver.common.by import By

    text = save(tmp_path / "notes.jpg", scene(1))
    text.write_bytes(b"not a photo")
    with live_server(fake_settings(tmp_path)) as live:
        with live.client() as c:
            for k in range(30):
                c.post("/api/concepts", data={"name": f"thing{k:02d}"},
                       files=photo_files(png(scene(k)))).raise_for_status()
        browser.get(f"{live.url}/#token={live.token}")
        card = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".concept[data-name='thing29']"), "the cards")
        browser.execute_script("arguments[0].scrollIntoView()", card)
        card.find_element(By.CSS_SELECTOR, ".more-photos").send_keys(str(text))
        status = browser.find_element(By.ID, "status")
        wait_for(lambda: "not an image" in status.text, "the refusal")
        top = browser.execute_script("return arguments[0].getBoundingClientRect().top", status)
        assert 0 <= top < browser.execute_script("return innerHeight")


def test_markup_from_the_memory_shows_as_text_and_never_runs(browser, tmp_path):
    """What another client stored (a name with quotes, a description, category, camera or line said holding
    markup) and the errors that quote it are put on the page as text, never as HTML; and were some put there as
    HTML, the page's Content-Security-Policy would keep its inline scripts from running."""
    from selenium.webdriver.common.by import By

    run = "<img src=x onerror=\"window.ran='{}'\">"
    name, described = 'bo" onmouseover="window.ran=1', run.format("description") + "<script>x</script>"
    with live_server(fake_settings(tmp_path)) as live:
        with live.client() as c:
            for k, n in enumerate((name, "javascript:window.ran=2")):
                fields = {"name": n, "description": described, "category": run.format("category")}
                c.post("/api/concepts", data=fields, files=photo_files(png(scene(k + 1)))).raise_for_status()
        live.home.events.add(Event("arrived", name, run.format("camera"), 1.0, time.time(), None, 0.9,
                                   run.format("said"), None))
        browser.get(f"{live.url}/#token={live.token}")
        wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".concept")) == 2, "the cards")
        card = browser.find_element(By.CSS_SELECTOR, ".concept")
        card.find_element(By.CSS_SELECTOR, ".edit").click()
        card.find_element(By.CSS_SELECTOR, ".edit-name").clear()
        card.find_element(By.CSS_SELECTOR, ".edit-name").send_keys("javascript:window.ran=2")
        card.find_element(By.CSS_SELECTOR, ".edit-form button[type=submit]").click()
        wait_for(lambda: "already exists" in browser.find_element(By.ID, "status").text, "the name taken, said")
        assert run.format("said") in browser.find_element(By.ID, "events").text
        assert card.find_element(By.CSS_SELECTOR, ".name").text == name
        assert card.find_element(By.CSS_SELECTOR, ".description").text == described
        assert browser.execute_script("return document.querySelectorAll('img[src=x], script:not([src])').length") == 0
        browser.execute_script("document.body.insertAdjacentHTML('beforeend', arguments[0])", run.format("inline"))
        wait_for(lambda: browser.execute_script("return document.querySelector('img[src=x]').complete"),
                 "the injected image tried")
        assert browser.execute_script("return window.ran") is None


def test_a_busy_days_sightings_say_how_many_are_not_shown(browser, tmp_path):
    """The newest 50 of today's sightings show, newest first, and the page says how many earlier ones it left
    out (the rest of 500 were cut without a word)."""
    from selenium.webdriver.common.by import By

    with live_server(fake_settings(tmp_path)) as live:
        now = time.time()
        for k in range(60):
            live.home.events.add(Event("arrived", f"cat{k}", "door", 1.0, now - 60 + k,
                                       Box(0, 0, 10, 10), 0.9, "", None))
        browser.get(f"{live.url}/#token={live.token}")
        items = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#events li")[50:], "the note under the list")
        assert "cat59 arrived" in browser.find_element(By.CSS_SELECTOR, "#events li").text
        assert items[0].text.startswith("...and 10 earlier today")


CONTRAST = """
const lum = (css) => { const [r, g, b] = css.match(/\\d+/g).slice(0, 3).map((v) => { v /= 255;
  return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
return [...document.querySelectorAll('button, .button')].filter((b) => b.offsetParent).map((b) => {
  const s = getComputedStyle(b); const [x, y] = [lum(s.color), lum(s.backgroundColor)].sort((p, q) => q - p);
  return [b.textContent.trim(), (x + 0.05) / (y + 0.05)]; });
"""


def test_every_buttons_text_is_readable(browser, tmp_path):
    """Each button's text stands out from its colour by 4.5:1 at least (WCAG AA): the grey of "Forget the token"
    and "Cancel" gave 4.0:1."""
    from selenium.webdriver.common.by import By

    with live_server(fake_settings(tmp_path)) as live:
        with live.client() as c:
            c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1)))).raise_for_status()
        browser.get(f"{live.url}/#token={live.token}")
        card = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".concept[data-name='bo']"), "bo's card")
        card.find_element(By.CSS_SELECTOR, ".edit").click()  # (its Cancel shows)
        ratios = browser.execute_script(CONTRAST)
        assert {"Forget the token", "Cancel", "Remember", "Forget"} <= {text for text, _ in ratios}
        assert [(text, round(ratio, 1)) for text, ratio in ratios if ratio < 4.5] == []


def test_a_backup_is_downloaded_from_the_page_and_restores(browser, tmp_path):
    from selenium.webdriver.common.by import By

    from edge_rap.memory.restore import restore

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    with live_server(fake_settings(tmp_path)) as live:
        with live.client() as c:
            assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1)))).status_code == 201
        browser.get(f"{live.url}/#token={live.token}")
        wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".concept[data-name='bo']"), "bo's card")
        wait_for_card_photo(browser, "bo")  # (a blob of its own: one a loaded machine fetched later was counted)
        # what the page holds in blobs: the backup was fetched into one, the whole file in the phone's memory
        browser.execute_script("window.held = 0; const made = URL.createObjectURL; "
                               "URL.createObjectURL = (b) => { window.held += b.size; return made(b); };")
        browser.find_element(By.ID, "backup").click()
        saved = wait_for(lambda: [p for p in downloads.glob("edge-rap-backup-*.tar")], "the backup saved")
        # the page says so once its click returns, which a loaded machine may run after the file is already saved
        said = f"Backup downloading: {saved[0].name} ("
        wait_for(lambda: browser.find_element(By.ID, "status").text.startswith(said), "the page saying so")
        assert browser.execute_script("return window.held") == 0
    assert restore(saved[0], tmp_path / "restored").counts.concepts == 1
