"""Drive the muster dashboard in headless Chromium (selenium): sign in with
a token, check the target preview, start a run of ACTION on every agent,
wait until every target's chip says succeeded, save a screenshot.

usage: dashboard.py BASE_URL TOKEN ACTION EXPECTED_TARGETS SCREENSHOT
Exit 0 when every check held; otherwise prints what was seen and exits 1.
"""
import os
import shutil
import sys
import tempfile
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, token, action, expected, shot = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
# Chromium's profile and its temporary files go to one directory of ours,
# removed at the end, so no run leaves anything in /tmp.
scratch = tempfile.mkdtemp(prefix="muster-browser-")
os.environ["TMPDIR"] = scratch
opts = Options()
opts.binary_location = "/usr/bin/chromium"
opts.add_argument(f"--user-data-dir={scratch}/profile")
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1000"):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
# The page redraws chips on every event: an element found a moment ago may
# be gone, so the waits retry on stale elements.
wait = WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,))
try:
    driver.get(base + "/")
    wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait.until(lambda d: d.find_element(By.ID, "app").is_displayed())
    # The agents table and the live preview of `all`.
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#agents tbody tr")) == expected)
    wait.until(lambda d: d.find_element(By.ID, "preview").text.startswith(f"{expected} target(s)"))
    driver.find_element(By.ID, "action").send_keys(action)
    driver.find_element(By.ID, "run-button").click()
    wait.until(lambda d: d.find_element(By.ID, "run-view").is_displayed())

    def all_succeeded(d):
        chips = d.find_elements(By.CSS_SELECTOR, "#chips .chip")
        return len(chips) == expected and all(c.get_attribute("data-state") == "succeeded" for c in chips)

    wait.until(all_succeeded)
    wait.until(lambda d: d.find_element(By.ID, "run-state").text == "succeeded")
    assert driver.find_element(By.ID, "progress-text").text == f"{expected} of {expected} done"
    groups = driver.find_element(By.ID, "groups").text
    assert f"({expected}): succeeded" in groups, groups
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history tbody tr")) >= 1)
    driver.save_screenshot(shot)
    print("ok")
except Exception as e:  # report what the page showed
    print("FAILED:", repr(e))
    try:
        print(driver.find_element(By.TAG_NAME, "body").text)
        for entry in driver.get_log("browser"):
            print("console:", entry)
    except Exception:
        pass
    sys.exit(1)
finally:
    driver.quit()
    shutil.rmtree(scratch, ignore_errors=True)
