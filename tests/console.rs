//! The operators' console in a real headless Chromium, driven over WebDriver (chromedriver on a
//! free port, plain HTTP from this test), against the real `kataar` binary on port 0 with a
//! fresh PostgreSQL database. One browser session walks the whole day: a wrong key refused, log
//! in by keyboard, a session's live numbers, a booking made through the citizen API showing up
//! without a reload, search, check-in and administer, a walk-in (and a duplicate photo ID
//! refused with the API's own message), a capacity change and a move of places (with the
//! API's 409s shown), Hindi, a centre key that cannot see another centre, and a 360-px-wide
//! phone where every control is on screen. A screenshot of each main view is written to
//! `target/console-screenshots/`.
//!
//! Without `chromium` and `chromedriver` on PATH the test says so and passes, unless
//! `CI=true` (CI installs both through `.ci/run`), where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{aadhaar, book, bookable, call, citizen, Server};

/// How long a wait for the page may take before the test gives up (generous: a shared box).
const WAIT: Duration = Duration::from_secs(20);

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// chromedriver on a free port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session over plain HTTP.
struct Browser {
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    async fn start(driver: &Driver, chromium: &Path) -> Browser {
        let http = reqwest::Client::new();
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--lang=en-GB".into(),
            "--window-size=1200,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args,
                "prefs": {"intl.accept_languages": "en-GB,en"}},
        }}});
        let v: Value = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        Browser {
            http,
            session: format!("{}/session/{session}", driver.url),
            _profile: profile,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        req = req.json(&body.unwrap_or_else(|| json!({})));
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        if v["value"].get("error").is_some() {
            panic!("WebDriver {path}: {v}");
        }
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_string()
    }

    /// Clicks like a user (WebDriver scrolls it into view; it must be visible and enabled).
    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{id}/click"), None)
            .await;
    }

    /// Types into an element (cleared first), like a keyboard.
    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{id}/clear"), None)
            .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            vec![json!(css)],
        )
        .await
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    /// Picks an option of a `<select>` the way a change by the user does.
    async fn select(&self, css: &str, value: &str) {
        let ok = self
            .js(
                "const s = document.querySelector(arguments[0]);
                 if (!s || ![...s.options].some(o => o.value === arguments[1])) return false;
                 s.value = arguments[1]; s.dispatchEvent(new Event('change')); return true;",
                vec![json!(css), json!(value)],
            )
            .await;
        assert_eq!(ok, json!(true), "{css} has no option {value}");
    }

    /// Waits until `script` (a function body) returns true; returns how long it took.
    async fn wait_for(&self, what: &str, script: &str, args: Vec<Value>) -> Duration {
        let start = Instant::now();
        loop {
            if self.js(script, args.clone()).await == json!(true) {
                return start.elapsed();
            }
            if start.elapsed() > WAIT {
                let body = self.js("return document.body.innerText", vec![]).await;
                panic!("timed out waiting for {what}; the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_text(&self, css: &str, needle: &str) -> Duration {
        self.wait_for(
            &format!("{css} to contain {needle:?}"),
            "const e = document.querySelector(arguments[0]);
             return !!e && e.offsetParent !== null && e.textContent.includes(arguments[1]);",
            vec![json!(css), json!(needle)],
        )
        .await
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Emulates a phone's viewport (CSS pixels) through the DevTools protocol.
    async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.cmd(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}}),
            ),
        )
        .await;
    }

    async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

fn start_driver(chromedriver: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn driver_ready(driver: &Driver) {
    let http = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await {
            if let Ok(v) = r.json::<Value>().await {
                if v["value"]["ready"] == json!(true) {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("chromedriver did not become ready at {}", driver.url);
}

/// Every visible control of the shown views is inside a `width`-px viewport, reachable by Tab
/// (not taken out of the tab order), and the page does not scroll sideways.
const REACHABLE: &str = "
    const w = arguments[0];
    const bad = [];
    if (document.documentElement.scrollWidth > w) bad.push('page scrolls sideways: ' + document.documentElement.scrollWidth);
    for (const e of document.querySelectorAll('button, input, select, summary, a[href]')) {
      if (e.offsetParent === null) continue;
      const r = e.getBoundingClientRect();
      if (r.width < 1 || r.left < -0.5 || r.right > w + 0.5) bad.push((e.id || e.dataset.action || e.textContent.trim()) + ' at ' + r.left + '..' + r.right);
      if (e.tabIndex < 0) bad.push((e.id || e.textContent.trim()) + ' not in the tab order');
    }
    return bad;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let (Some(chromium), Some(chromedriver)) = (
        which("chromium").or_else(|| which("chromium-browser")),
        which("chromedriver"),
    ) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but chromium or chromedriver is not installed (.ci/run installs them)"
        );
        eprintln!(
            "SKIPPED: the console browser test needs `chromium` and `chromedriver` on PATH \
             (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let driver = start_driver(&chromedriver);
    let srv = Server::postgres().await;
    driver_ready(&driver).await;
    let http = reqwest::Client::new();
    let admin = srv.create_key(&["--role", "admin", "--name", "district office"]);
    let base = srv.base.clone();

    // A session a citizen can book, and another centre that the centre key must not see.
    let (centre_a, session, slot) = bookable(&srv, &http, 312).await;
    let (s, cap) = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/v1/admin/capacity?district_id=363&days=7"),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{cap}");
    let other = cap["centres"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["centre_id"] != centre_a && !c["sessions"].as_array().unwrap().is_empty())
        .expect("a demo centre in another district");
    let other_session = other["sessions"][0]["session_id"].as_u64().unwrap();
    let centre_key = srv.create_key(&[
        "--role",
        "centre",
        "--centres",
        &centre_a.to_string(),
        "--name",
        "PHC staff",
    ]);
    let (s, detail) = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/v1/admin/sessions/{session}"),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{detail}");
    let date = detail["date"].as_str().unwrap().to_string();

    let browser = Browser::start(&driver, &chromium).await;
    let mut shots = Vec::new();

    // A wrong key is refused with the API's code; nothing else is shown.
    browser.goto(&format!("{base}/console")).await;
    browser.wait_text("#login-title", "operator key").await;
    shots.push(browser.screenshot("login").await);
    browser.type_into("#key", "kop_not-a-real-key").await;
    browser.click("#login").await;
    browser.wait_text("#login-error", "unauthenticated").await;
    assert_eq!(
        browser
            .js(
                "return document.getElementById('capacity-view').hidden",
                vec![]
            )
            .await,
        json!(true)
    );

    // Log in by keyboard (Enter submits); the key is not in the URL.
    browser.type_into("#key", &format!("{admin}\u{E007}")).await;
    browser
        .wait_for(
            "the capacity view",
            "return !document.getElementById('capacity-view').hidden",
            vec![],
        )
        .await;
    let url = browser.js("return location.href", vec![]).await;
    assert!(!url.as_str().unwrap().contains(&admin), "{url}");
    assert_eq!(
        browser
            .js("return sessionStorage.getItem('kataar.key')", vec![])
            .await,
        json!(admin)
    );

    // The session's live numbers.
    browser.select("#district", "312").await;
    browser.select("#centre", &centre_a.to_string()).await;
    browser
        .js(
            "const d = document.getElementById('date'); d.value = arguments[0]; d.dispatchEvent(new Event('change'));",
            vec![json!(date)],
        )
        .await;
    let booked_css =
        format!("[data-session=\"{session}\"] [data-scope=\"session\"][data-total=\"booked\"]");
    browser
        .wait_for(
            "the session's counters",
            "return !!document.querySelector(arguments[0])",
            vec![json!(booked_css)],
        )
        .await;
    let booked_before: u64 = browser.text(&booked_css).await.parse().unwrap();
    let available_css =
        format!("[data-session=\"{session}\"] [data-scope=\"session\"][data-total=\"available\"]");
    let available_before: u64 = browser.text(&available_css).await.parse().unwrap();
    assert!(available_before > 0);

    // A booking through the citizen API shows up without a reload.
    browser
        .js("window.kataarNoReload = 'still here'; return true", vec![])
        .await;
    let mobile = "9811122334";
    let (token, beneficiary) = citizen(&srv, &http, mobile, 7001).await;
    let booking = book(&srv, &http, &token, beneficiary, session, slot).await;
    let booking_id = booking["booking_id"].as_u64().unwrap();
    let seen_after = browser
        .wait_for(
            "the booked count to go up",
            "const e = document.querySelector(arguments[0]); return !!e && Number(e.textContent) === arguments[1];",
            vec![json!(booked_css), json!(booked_before + 1)],
        )
        .await;
    eprintln!("console: booking visible on the page {seen_after:?} after its 201");
    assert_eq!(
        browser.text(&available_css).await,
        (available_before - 1).to_string()
    );
    assert_eq!(
        browser.js("return window.kataarNoReload", vec![]).await,
        json!("still here")
    );
    // The bars are drawn (the content security policy allows no inline style attribute, so
    // they are sized through the CSSOM).
    let bar = browser
        .js(
            "const e = document.querySelector(arguments[0] + ' .bar .booked'); return e ? e.getBoundingClientRect().width : -1;",
            vec![json!(format!("[data-session=\"{session}\"]"))],
        )
        .await;
    assert!(bar.as_f64().unwrap() > 0.0, "booked bar width {bar}");
    shots.push(browser.screenshot("capacity").await);

    // The centre's day: the list by token number; search by the mobile's last digits.
    browser
        .click(&format!("[data-open-day=\"{session}\"]"))
        .await;
    let row = format!("[data-booking=\"{booking_id}\"]");
    browser.wait_text(&row, "Citizen 7001").await;
    browser.type_into("#search", "2334").await;
    browser
        .wait_for(
            "the search to keep only the booking",
            "const rows = document.querySelectorAll('#bookings li'); return rows.length === 1 && rows[0].dataset.booking === arguments[0];",
            vec![json!(booking_id.to_string())],
        )
        .await;
    browser.type_into("#search", &booking_id.to_string()).await;
    browser
        .wait_for(
            "the search by booking id",
            "const rows = document.querySelectorAll('#bookings li'); return rows.length === 1 && rows[0].dataset.booking === arguments[0];",
            vec![json!(booking_id.to_string())],
        )
        .await;
    shots.push(browser.screenshot("day").await);

    // Check in and administer: two taps (the batch is typed once for the day).
    browser.type_into("#batch", "BATCH-4711").await;
    browser
        .click(&format!("{row} [data-action=\"check-in\"]"))
        .await;
    browser
        .wait_for(
            "checked in",
            "const e = document.querySelector(arguments[0]); return !!e && e.dataset.status === 'checked_in';",
            vec![json!(row)],
        )
        .await;
    browser
        .click(&format!("{row} [data-action=\"administer\"]"))
        .await;
    browser
        .wait_for(
            "administered",
            "const e = document.querySelector(arguments[0]); return !!e && e.dataset.status === 'administered';",
            vec![json!(row)],
        )
        .await;
    let (s, list) = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/v1/admin/bookings?session_id={session}"),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{list}");
    let stored = list["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["booking_id"] == booking_id)
        .unwrap();
    assert_eq!(stored["status"], "administered", "{stored}");
    assert_eq!(stored["mobile_masked"], "XXXXXX2334");

    // A walk-in: a bad photo ID is refused inline on its field, a good one is checked in, and
    // the same photo ID again is refused with the API's own message.
    browser.type_into("#search", "").await;
    browser.click("#walkin-box summary").await;
    browser.type_into("#w-name", "Ramesh Yadav").await;
    browser.type_into("#w-birth", "1975").await;
    browser.type_into("#w-idnumber", "1234").await;
    browser.click("#w-submit").await;
    browser
        .wait_text("[data-field=\"beneficiary.id_number\"]", "")
        .await;
    browser.wait_text("#walkin-error", "invalid_request").await;
    let id_number = aadhaar(8_800_001);
    browser.type_into("#w-idnumber", &id_number).await;
    browser.click("#w-submit").await;
    browser.wait_text("#walkin-ok", "#").await;
    let (_, list) = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/v1/admin/bookings?session_id={session}"),
        Some(&admin),
        None,
        None,
    )
    .await;
    let walkin = list["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "Ramesh Yadav")
        .unwrap_or_else(|| panic!("walk-in not stored: {list}"));
    assert_eq!(walkin["status"], "checked_in");
    browser.type_into("#w-name", "Ramesh Yadav").await;
    browser.type_into("#w-birth", "1975").await;
    browser.type_into("#w-idnumber", &id_number).await;
    browser.click("#w-submit").await;
    browser.wait_text("#walkin-error", "(").await;
    let shown = browser.text("#walkin-error").await;
    let (s, refused) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/admin/walkins"),
        Some(&admin),
        Some(
            json!({"session_id": session, "slot_id": walkin["slot_id"], "dose": 1,
            "beneficiary": {"name": "Ramesh Yadav", "birth_year": 1975, "gender": "female",
                "id_type": "aadhaar", "id_number": id_number}}),
        ),
        Some("browser-test-duplicate"),
    )
    .await;
    assert_eq!(s, 409, "{refused}");
    let code = refused["error"]["code"].as_str().unwrap();
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        shown.contains(message) && shown.contains(&format!("({code})")),
        "page shows {shown:?}, the API said {refused}"
    );
    assert!(!shown.contains(&id_number), "{shown}");
    browser
        .js("document.getElementById('walkin-error').scrollIntoView({block: 'center'}); return true", vec![])
        .await;
    shots.push(browser.screenshot("walkin").await);

    // Capacity change below booked and a move of places: the API's 409s shown, a good move applied.
    browser.click("#pools-box summary").await;
    let pools: Vec<Value> = detail["slots"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|sl| sl["pools"].as_array().unwrap().clone())
        .collect();
    let booked_pool = booking["pool_id"]
        .as_u64()
        .or_else(|| {
            detail["slots"]
                .as_array()
                .unwrap()
                .iter()
                .find(|sl| sl["slot_id"] == slot)
                .and_then(|sl| {
                    sl["pools"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|p| p["dose"] == 1 && p["channel"] == "online")
                })
                .and_then(|p| p["pool_id"].as_u64())
        })
        .unwrap();
    browser.type_into(&format!("#cap-{booked_pool}"), "0").await;
    browser
        .click(&format!("[data-set-pool=\"{booked_pool}\"]"))
        .await;
    browser
        .wait_text("#pools-error", "(capacity_below_booked)")
        .await;
    let from = pools
        .iter()
        .find(|p| p["dose"] == 2 && p["channel"] == "online" && p["capacity"].as_u64() > Some(1))
        .expect("a dose-2 online pool with places");
    let to = pools
        .iter()
        .find(|p| p["dose"] == 2 && p["channel"] == "walkin")
        .unwrap();
    let (from_id, to_id) = (
        from["pool_id"].as_u64().unwrap(),
        to["pool_id"].as_u64().unwrap(),
    );
    browser.select("#m-from", &from_id.to_string()).await;
    browser.select("#m-to", &to_id.to_string()).await;
    let too_many = from["capacity"].as_u64().unwrap() + 1;
    browser.type_into("#m-count", &too_many.to_string()).await;
    browser.click("#m-submit").await;
    browser.wait_text("#pools-error", "(").await;
    let move_refusal = browser.text("#pools-error").await;
    let (s, refused) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/admin/pools/move"),
        Some(&admin),
        Some(json!({"from_pool_id": from_id, "to_pool_id": to_id, "count": too_many})),
        Some("browser-test-move-too-many"),
    )
    .await;
    assert_eq!(s, 409, "{refused}");
    assert!(
        move_refusal.contains(refused["error"]["message"].as_str().unwrap())
            && move_refusal.contains(&format!("({})", refused["error"]["code"].as_str().unwrap())),
        "page shows {move_refusal:?}, the API said {refused}"
    );
    browser.type_into("#m-count", "1").await;
    browser.click("#m-submit").await;
    browser.wait_text("#pools-ok", "").await;
    let (_, after) = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/v1/admin/sessions/{session}"),
        Some(&admin),
        None,
        None,
    )
    .await;
    let cap_of = |v: &Value, id: u64| {
        v["slots"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|sl| sl["pools"].as_array().unwrap().clone())
            .find(|p| p["pool_id"] == id)
            .unwrap()["capacity"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(cap_of(&after, from_id), cap_of(&detail, from_id) - 1);
    assert_eq!(cap_of(&after, to_id), cap_of(&detail, to_id) + 1);
    browser
        .js(
            "document.getElementById('m-submit').scrollIntoView({block: 'center'}); return true",
            vec![],
        )
        .await;
    shots.push(browser.screenshot("pools").await);

    // Hindi, by the switch (and back).
    browser.click("#back").await;
    browser.click("#lang").await;
    browser.wait_text("#capacity-title", "लाइव क्षमता").await;
    shots.push(browser.screenshot("capacity-hindi").await);
    browser.click("#lang").await;
    browser.wait_text("#capacity-title", "Live capacity").await;

    // 360 px wide: every control of both views is on screen and reachable by keyboard.
    browser.viewport(360, 780, true).await;
    browser
        .wait_for(
            "the narrow layout",
            "return window.innerWidth === 360",
            vec![],
        )
        .await;
    let bad = browser.js(REACHABLE, vec![json!(360)]).await;
    assert_eq!(bad, json!([]), "capacity view at 360 px");
    shots.push(browser.screenshot("phone-capacity").await);
    browser
        .click(&format!("[data-open-day=\"{session}\"]"))
        .await;
    browser.wait_text(&row, "Citizen 7001").await;
    browser
        .js(
            "for (const d of document.querySelectorAll('details')) d.open = true; return true",
            vec![],
        )
        .await;
    let bad = browser.js(REACHABLE, vec![json!(360)]).await;
    assert_eq!(bad, json!([]), "day view at 360 px");
    shots.push(browser.screenshot("phone-day").await);
    browser.viewport(1200, 900, false).await;

    // A centre key sees its centre only; another centre's session is not found.
    browser.click("#logout").await;
    browser
        .type_into("#key", &format!("{centre_key}\u{E007}"))
        .await;
    browser
        .wait_for(
            "the capacity view for the centre key",
            "return !document.getElementById('capacity-view').hidden && document.getElementById('centre').options.length > 1",
            vec![],
        )
        .await;
    let centres = browser
        .js(
            "return [...document.getElementById('centre').options].map(o => o.value).filter(v => v)",
            vec![],
        )
        .await;
    assert_eq!(centres, json!([centre_a.to_string()]));
    browser
        .js(
            "location.hash = '#day/' + arguments[0]; return true",
            vec![json!(other_session)],
        )
        .await;
    browser.wait_text("#day-error", "not_found").await;
    shots.push(browser.screenshot("centre-key-other-centre").await);
    // The operator console never asked for anything outside this server.
    let foreign = browser
        .js(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin))",
            vec![],
        )
        .await;
    assert_eq!(foreign, json!([]));

    browser.quit().await;
    drop(driver);
    srv.finish().await;
    for s in &shots {
        eprintln!("screenshot: {}", s.display());
        assert!(std::fs::metadata(s).unwrap().len() > 1000);
    }
}
