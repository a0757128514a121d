//! The web pages in a real browser: headless Chromium driven through
//! chromedriver (WebDriver). A player signs up, signs out and in, is
//! credited, bets, sees another player's bet move the pool live, cancels,
//! bets again; the operator settles in the console and a second operator
//! approves; the player sees the payout and, in the history row, who
//! settled. Operators sign in with two-factor, approve a large withdrawal
//! in two, and a viewer finds every button disabled. Screenshots go to
//! `docs/`.
//!
//! Runs when chromedriver is found (`TEST_CHROMEDRIVER` or on the PATH);
//! CI installs it and sets `TEST_CHROMEDRIVER`, so there it cannot skip.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use support::{at, Db, TestApp};

const ADMIN: &str = "admin-token-for-the-browser-0123";
const WAIT: Duration = Duration::from_secs(10);

/// chromedriver on a free port, stopped with the test.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<String> {
    if let Ok(path) = std::env::var("TEST_CHROMEDRIVER") {
        if !path.is_empty() {
            return Some(path);
        }
    }
    let found = Command::new("sh")
        .args(["-c", "command -v chromedriver"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    (!path.is_empty()).then_some(path)
}

async fn browser(path: &str, profile: &std::path::Path) -> (Driver, Client) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver(child, port);
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--window-size=1100,1400",
            format!("--user-data-dir={}", profile.display()),
        ]}),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let connected = ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{}", driver.1))
            .await;
        match connected {
            Ok(client) => return (driver, client),
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "chromedriver: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Waits until the element's text satisfies `check`; its text.
async fn text_becomes(client: &Client, css: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            last = element.text().await.unwrap_or_default();
            if check(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{css}: text stayed {last:?}");
}

async fn fill(client: &Client, css: &str, text: &str) {
    let input = client.find(Locator::Css(css)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

/// Clicks the element, finding it again should the page have redrawn it
/// in between (a live update); panics after `WAIT`.
async fn click(client: &Client, css: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let clicked = match client.find(Locator::Css(css)).await {
            Ok(element) => element.click().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match clicked {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() >= deadline => panic!("{css}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_and_the_operator_do_everything_by_clicking() {
    let Some(path) = chromedriver() else {
        eprintln!("skipped: the browser test (no chromedriver; set TEST_CHROMEDRIVER)");
        return;
    };
    let t = TestApp::spawn(
        Db::Sqlite,
        &[("ADMIN_TOKEN", ADMIN)],
        at("2026-11-24T15:00:00Z"),
    )
    .await;
    t.open("20261124").await;
    let base = format!("http://{}", t.address);
    let profile = std::env::temp_dir().join(format!("updown-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let (_driver, client) = browser(&path, &profile).await;

    // Sign up, out, and in again.
    client.goto(&format!("{base}/")).await.unwrap();
    text_becomes(&client, "#round-code", |t| t == "20261124").await;
    fill(&client, "#sign-up-email", "ann@example.com").await;
    fill(&client, "#sign-up-password", "short").await;
    click(&client, "#sign-up-form button[type=submit]").await;
    let refused = text_becomes(&client, "#sign-up-password-error", |t| !t.is_empty()).await;
    assert!(refused.contains("password"), "{refused}");
    fill(&client, "#sign-up-password", "a long passphrase").await;
    click(&client, "#sign-up-form button[type=submit]").await;
    text_becomes(&client, "#who", |t| t == "ann@example.com").await;
    click(&client, "#sign-out").await;
    text_becomes(&client, "#who", |t| t == "not signed in").await;
    // By keyboard alone: Enter in the password field signs in.
    fill(&client, "#sign-in-email", "ann@example.com").await;
    fill(&client, "#sign-in-password", "a long passphrase\u{E007}").await;
    text_becomes(&client, "#who", |t| t == "ann@example.com").await;
    let address = text_becomes(&client, "#deposit-address", |t| t.starts_with("0x")).await;

    // A deposit to her address shows without reloading.
    let (status, _) = support::call(
        t.address,
        "POST",
        "/simulate/deposit_webhook",
        Some(
            &json!({"address": address, "amount": 50_000_000, "tx_hash": "0xbrowser"}).to_string(),
        ),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, axum::http::StatusCode::CREATED);
    text_becomes(&client, "#balance", |t| t == "50.00").await;

    // A stake with too many decimals is refused next to the field.
    fill(&client, "#bet-amount", "1.0000001").await;
    click(&client, "#bet-form button[value=UP]").await;
    text_becomes(&client, "#bet-amount-error", |t| t.contains("6 decimals")).await;
    fill(&client, "#bet-amount", "2.5").await;
    click(&client, "#bet-form button[value=UP]").await;
    text_becomes(&client, "#pool-up", |t| t == "2.50").await;
    text_becomes(&client, "#balance", |t| t == "47.50").await;

    // Another player bets: the pool moves live.
    let bob = t.funded("bob", support::usdc(10)).await;
    t.app
        .place_bet(
            bob,
            updown_domain::round::Side::Down,
            support::usdc(4),
            None,
            None,
        )
        .await
        .unwrap();
    text_becomes(&client, "#pool-down", |t| t == "4.00").await;
    text_becomes(&client, "#bets-down", |t| t == "1").await;

    // Cancel, then bet again.
    click(&client, "#my-bets button").await;
    text_becomes(&client, "#my-bets", |t| t.contains("CANCELLED")).await;
    text_becomes(&client, "#balance", |t| t == "50.00").await;
    fill(&client, "#bet-amount", "3").await;
    click(&client, "#bet-form button[value=UP]").await;
    text_becomes(&client, "#pool-up", |t| t == "3.00").await;
    client
        .screenshot()
        .await
        .map(|png| save_screenshot("player.png", &png))
        .unwrap();

    // After the close the operator settles UP in the console.
    let round = t
        .app
        .round(updown_domain::ids::RoundCode::parse("20261124").unwrap())
        .await
        .unwrap();
    t.clock.set(round.terms.settle_at);
    client.goto(&format!("{base}/admin")).await.unwrap();
    click(&client, "#sign-in-section summary").await;
    fill(&client, "#token", ADMIN).await;
    click(&client, "#token-form button[type=submit]").await;
    text_becomes(&client, "#verify", |t| t.starts_with("OK")).await;
    fill(&client, "#round-code-input", "20261124").await;
    fill(&client, "#round-reason", "browser test").await;
    client
        .find(Locator::Css("#round-result option[value=UP]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(&client, "#round-form button[value=settle]").await;
    // A result by hand waits for a second operator, who approves it.
    text_becomes(&client, "#round-note", |t| t.contains("approval (#1)")).await;
    // Asked with break-glass: two named operators must approve.
    for name in ["second", "third"] {
        let email = format!("{name}@ops.example.com");
        t.app
            .add_operator(&email, updown_domain::operator::Role::Operator, "test")
            .await
            .unwrap();
        let (_, token) = t
            .app
            .new_operator_token(&email, "test", "test")
            .await
            .unwrap();
        let (status, approved) = support::call(
            t.address,
            "POST",
            "/admin/approvals/1/approve",
            Some("{}"),
            Some(&token),
        )
        .await;
        assert_eq!(status, axum::http::StatusCode::OK, "{approved}");
    }
    text_becomes(&client, "tr[data-round='20261124']", |t| {
        t.contains("SETTLED") && t.contains("UP")
    })
    .await;
    text_becomes(&client, "#tvl", |t| t.contains("house fees")).await;
    // The oracle in use, and no incident.
    text_becomes(&client, "#oracle", |t| {
        t.contains("oracle: mock") && t.contains("no disagreement or revision seen")
    })
    .await;
    // Balances follow the settlement: Ann 50 - 3 + 6.96, Bob 10 - 4.
    text_becomes(&client, "#users", |t| {
        t.contains("53.96") && t.contains("6.00")
    })
    .await;
    client
        .screenshot()
        .await
        .map(|png| save_screenshot("admin.png", &png))
        .unwrap();

    // Ann won: her 3 back plus Bob's 4 less the 1% fee.
    client.goto(&format!("{base}/")).await.unwrap();
    text_becomes(&client, "#balance", |t| t == "53.96").await;
    let row = text_becomes(&client, "#history tr[data-round='20261124']", |t| {
        t.contains("UP")
    })
    .await;
    assert!(row.contains("3.96"), "{row}");
    // Who settled it, on the public page: both operators.
    assert!(
        row.contains(
            "by admin (break-glass), approved by second@ops.example.com and third@ops.example.com"
        ),
        "{row}"
    );
    // The round's proof: its terms (the oracle they name) and who settled.
    click(&client, "#history tr[data-round='20261124'] button").await;
    text_becomes(&client, "#proof", |t| {
        t.contains("terms digest")
            && t.contains("closes from: mock")
            && t.contains("dispute window: none")
            && t.contains("settled by admin")
    })
    .await;

    // Withdraw: a bad address is refused next to its field; then queued.
    fill(&client, "#withdraw-amount", "10").await;
    fill(&client, "#withdraw-address", "0x1234").await;
    click(&client, "#withdraw-form button[type=submit]").await;
    text_becomes(&client, "#withdraw-address-error", |t| {
        t.contains("address")
    })
    .await;
    fill(
        &client,
        "#withdraw-address",
        "0x52908400098527886E0F7030069857D2E4169EE7",
    )
    .await;
    click(&client, "#withdraw-form button[type=submit]").await;
    text_becomes(&client, "#withdrawals", |t| {
        t.contains("10.00") && t.contains("QUEUED")
    })
    .await;
    text_becomes(&client, "#balance", |t| t == "43.96").await;

    // Her own limits, kept.
    fill(&client, "#limit-round", "5").await;
    click(&client, "#limits-form button[type=submit]").await;
    let app = t.app.clone();
    let ann = app.user_by_email("ann@example.com").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while t
        .store()
        .user(ann.id)
        .await
        .unwrap()
        .limits
        .max_stake_per_round
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the limit was not saved"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let limits = t.store().user(ann.id).await.unwrap().limits;
    assert_eq!(limits.max_stake_per_round, Some(support::usdc(5)));

    // A key for a bot: shown once, listed, revoked.
    click(&client, "#key-form button[type=submit]").await;
    let shown = text_becomes(&client, "#new-key", |t| t.starts_with("ud_")).await;
    let key = shown.split_whitespace().next().unwrap().to_string();
    assert_eq!(app.authenticate(&key).await.unwrap().id, ann.id);
    // Listed by its first characters (the sign-up key is there too).
    let prefix: String = key.chars().take(9).collect();
    text_becomes(&client, "#keys", |t| t.contains(&prefix)).await;
    click(&client, &format!("#keys tr[data-prefix='{prefix}'] button")).await;
    text_becomes(&client, "#keys", |t| !t.contains(&prefix)).await;
    assert!(
        app.authenticate(&key).await.is_err(),
        "the revoked key no longer works"
    );

    // On a phone-sized screen nothing is wider than the screen.
    client.set_window_size(390, 844).await.unwrap();
    for (page, filled) in [("/", "#balance"), ("/admin", "#tvl")] {
        client.goto(&format!("{base}{page}")).await.unwrap();
        text_becomes(&client, filled, |t| !t.is_empty() && t != "-").await;
        let overflow = client
            .execute(
                "return document.documentElement.scrollWidth - window.innerWidth;",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "{page} scrolls sideways by {overflow}px"
        );
    }
    client.close().await.unwrap();
    t.assert_verified().await;
    let _ = std::fs::remove_dir_all(&profile);
}

/// The operators' story, by clicking: an admin adds a treasurer; the
/// treasurer sets up two-factor and signs in with a code; a large
/// withdrawal waits for a second treasurer and is then sent; a viewer sees
/// the buttons disabled and is refused (403) if they call the API anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_sign_in_with_two_factor_and_approve_a_large_withdrawal_by_clicking() {
    use updown_app::clock::Clock;
    use updown_domain::operator::Role;
    use updown_domain::totp::{step_at, TotpSecret};
    let Some(path) = chromedriver() else {
        eprintln!("skipped: the browser test (no chromedriver; set TEST_CHROMEDRIVER)");
        return;
    };
    let t = TestApp::spawn(
        Db::Sqlite,
        &[
            ("ADMIN_TOKEN", ADMIN),
            ("CHAIN_SENDER", "mock"),
            ("WITHDRAWAL_APPROVAL_OVER", "100USDC"),
        ],
        at("2026-11-24T15:00:10Z"),
    )
    .await;
    t.open("20261124").await;
    let (_, boss_password) = t
        .app
        .add_operator("boss@ops.example.com", Role::Admin, "test")
        .await
        .unwrap();
    let base = format!("http://{}", t.address);
    let profile = std::env::temp_dir().join(format!("updown-chromium-ops-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let (_driver, client) = browser(&path, &profile).await;
    let sign_in = |email: &'static str, password: String, code: Option<String>| {
        let client = client.clone();
        async move {
            fill(&client, "#sign-in-email", email).await;
            fill(&client, "#sign-in-password", &password).await;
            fill(&client, "#sign-in-code", code.as_deref().unwrap_or("")).await;
            click(&client, "#sign-in-form button[type=submit]").await;
        }
    };

    // The admin signs in and adds a treasurer: a password, shown once.
    client.goto(&format!("{base}/admin")).await.unwrap();
    sign_in("boss@ops.example.com", boss_password, None).await;
    text_becomes(&client, "#who", |t| t == "boss@ops.example.com (admin)").await;
    fill(&client, "#operator-email", "tre@ops.example.com").await;
    client
        .find(Locator::Css("#operator-role option[value=treasurer]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(&client, "#operator-form button[type=submit]").await;
    let shown = text_becomes(&client, "#operator-password", |t| t.contains("shown once")).await;
    let tre_password = shown.split_whitespace().last().unwrap().to_string();
    text_becomes(&client, "#operators", |t| t.contains("tre@ops.example.com")).await;
    click(&client, "#sign-out").await;
    text_becomes(&client, "#who", |t| t == "not signed in").await;

    // The treasurer signs in and sets up two-factor from the QR's key.
    sign_in("tre@ops.example.com", tre_password.clone(), None).await;
    text_becomes(&client, "#who", |t| t == "tre@ops.example.com (treasurer)").await;
    text_becomes(&client, "#totp-status", |t| t.contains("off")).await;
    click(&client, "#totp-start").await;
    let secret = text_becomes(&client, "#totp-secret", |t| t.len() >= 32).await;
    let secret = TotpSecret::from_base32(&secret).unwrap();
    assert!(
        client.find(Locator::Css("#totp-qr svg")).await.is_ok(),
        "the QR is drawn"
    );
    let code = || secret.code(step_at(t.clock.now()));
    fill(&client, "#totp-code", &code()).await;
    click(&client, "#totp-form button[type=submit]").await;
    text_becomes(&client, "#totp-status", |t| t.contains("is on")).await;
    click(&client, "#sign-out").await;
    text_becomes(&client, "#who", |t| t == "not signed in").await;
    // Now the password alone is not enough; with the next code it is.
    sign_in("tre@ops.example.com", tre_password.clone(), None).await;
    text_becomes(&client, "#sign-in-code-error", |t| t.contains("code")).await;
    t.advance(chrono::Duration::seconds(30));
    sign_in("tre@ops.example.com", tre_password, Some(code())).await;
    text_becomes(&client, "#who", |t| t == "tre@ops.example.com (treasurer)").await;

    // A player asks for 300 USDC: over the line, it waits for two.
    let fay = t.funded("fay", support::usdc(500)).await;
    let held = t
        .app
        .withdraw(
            fay,
            support::usdc(300),
            "0x52908400098527886E0F7030069857D2E4169EE7",
            None,
        )
        .await
        .unwrap();
    assert!(held.awaiting_approval);
    client.refresh().await.unwrap();
    text_becomes(&client, "#approvals-mine", |t| t == "1 waiting for you").await;
    click(
        &client,
        "#approvals tr[data-approval='1'] button[data-decide=approve]",
    )
    .await;
    text_becomes(&client, "#approvals", |t| t.contains("1 of 2")).await;
    text_becomes(&client, "#approvals-mine", |t| t.contains("nothing")).await;
    assert!(t.app.withdrawal_step().await.unwrap().submitted.is_empty());
    // A second treasurer approves (with their token): then it is sent.
    t.app
        .add_operator("two@ops.example.com", Role::Treasurer, "test")
        .await
        .unwrap();
    let (_, two) = t
        .app
        .new_operator_token("two@ops.example.com", "test", "test")
        .await
        .unwrap();
    let (status, _) = support::call(
        t.address,
        "POST",
        "/admin/approvals/1/approve",
        Some("{}"),
        Some(&two),
    )
    .await;
    assert_eq!(status, axum::http::StatusCode::OK);
    assert_eq!(
        t.app.withdrawal_step().await.unwrap().submitted,
        vec![held.id.0]
    );
    client.refresh().await.unwrap();
    text_becomes(
        &client,
        &format!("tr[data-withdrawal='{}']", held.id),
        |t| t.contains("SUBMITTED"),
    )
    .await;
    client
        .screenshot()
        .await
        .map(|png| save_screenshot("console-approvals.png", &png))
        .unwrap();
    click(&client, "#sign-out").await;

    // A viewer: every button that changes something is disabled, and the
    // API refuses them anyway.
    let (_, viewer_password) = t
        .app
        .add_operator("vic@ops.example.com", Role::Viewer, "test")
        .await
        .unwrap();
    text_becomes(&client, "#who", |t| t == "not signed in").await;
    sign_in("vic@ops.example.com", viewer_password, None).await;
    text_becomes(&client, "#who", |t| t == "vic@ops.example.com (viewer)").await;
    text_becomes(&client, "#verify", |t| t.starts_with("OK")).await;
    for button in ["open", "lock", "settle", "void"] {
        let disabled = client
            .find(Locator::Css(&format!("#round-form button[value={button}]")))
            .await
            .unwrap()
            .prop("disabled")
            .await
            .unwrap();
        assert_eq!(disabled.as_deref(), Some("true"), "{button}");
    }
    let status = client
        .execute(
            "return fetch('/admin/rounds/20261124/lock', {method: 'POST', credentials: 'same-origin', \
             headers: {'content-type': 'application/json'}, body: JSON.stringify({reason: 'try'})}) \
             .then((r) => r.status);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status.as_i64(), Some(403));
    client.close().await.unwrap();
    t.assert_verified().await;
    let _ = std::fs::remove_dir_all(&profile);
}

/// Keeps a screenshot: in `docs/` (shown in the README) when
/// `UPDATE_SCREENSHOTS=1`, else in `target/screenshots/`, so that a test
/// run leaves the checkout as it was.
fn save_screenshot(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let folder = match std::env::var("UPDATE_SCREENSHOTS").as_deref() {
        Ok("1") => root.join("docs"),
        _ => root.join("target/screenshots"),
    };
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(name), png).unwrap();
}
