//! End to end, in the real app: two instances of the built tara-app (a customer and a guide)
//! in real windows on a virtual X display, driven through tauri-driver and WebKitWebDriver,
//! against a real server on a loopback port. Everything happens through the UI, as a person
//! would do it; the server is only stopped and started to cut the network.
//!
//! Screenshots of each screen go to `target/…/tmp/screenshots`, or to the folder named by
//! `TARA_SCREENSHOTS` (`cargo xtask screenshots` refreshes docs/screenshots with it).

#[path = "../../crates/server/tests/common/mod.rs"]
#[allow(unused_imports)]
mod server;
mod support;

use anyhow::{ensure, Context, Result};
use serde_json::json;
use server::TestServer;
use std::path::{Path, PathBuf};
use support::webdriver::{App, Display, ENTER};

const GUIDE_PHONE: &str = "9000000001";
const CUSTOMER_PHONE: &str = "9811111111";

fn shots_dir() -> PathBuf {
    std::env::var_os("TARA_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots"))
}

async fn shot(app: &App, name: &str) -> Result<()> {
    // Let transitions settle so the picture shows the screen, not half of it.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    app.screenshot(&shots_dir().join(format!("{name}.png")))
        .await
}

/// Logs in through the login screen with the code a dev server hands back.
async fn log_in(app: &App, role: &str, phone: &str, shot_name: Option<&str>) -> Result<()> {
    app.find("[data-testid=screen-login]").await?;
    app.click(&format!("[data-testid=login-role-{role}]"))
        .await?;
    app.type_into("[data-testid=login-phone]", phone).await?;
    if let Some(name) = shot_name {
        shot(app, name).await?;
    }
    app.click("[data-testid=login-send-otp]").await?;
    let code = app.text("[data-testid=login-dev-otp]").await?;
    ensure!(code.trim().len() == 6, "a six-digit dev code, got {code:?}");
    app.type_into("[data-testid=login-otp]", code.trim())
        .await?;
    app.click("[data-testid=login-verify]").await?;
    app.gone("[data-testid=screen-login]").await
}

/// The texts of the chat's messages of one kind, in the order shown, with their seq and status.
async fn bubbles(app: &App) -> Result<Vec<(String, String, String)>> {
    let v = app
        .js(
            "return [...document.querySelectorAll('[data-testid=message]')].map(m => [
                (m.querySelector('.text') || {textContent: ''}).textContent,
                m.dataset.seq || '', m.dataset.status || '']);",
            json!([]),
        )
        .await?;
    Ok(serde_json::from_value(v)?)
}

fn test_image(dir: &Path) -> Result<PathBuf> {
    let img = image::RgbImage::from_fn(900, 600, |x, y| {
        image::Rgb([(x / 4) as u8, (y / 3) as u8, ((x + y) / 6) as u8])
    });
    let path = dir.join("chart.png");
    img.save(&path)?;
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_consultation_in_two_windows() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut server = TestServer::start().await;
    let guide_id = server
        .add_guide(&format!("+91{GUIDE_PHONE}"), "Asha Sharma")
        .await;
    let url = format!("http://{}", server.addr);
    let display = Display::start()?;
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_tara-app"));
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs)?;

    let customer = App::launch(
        "customer",
        &display,
        &binary,
        &["--profile", "customer", "--server", &url],
        &tmp.path().join("customer"),
        &logs.join("customer-driver.log"),
    )
    .await?;
    let guide = App::launch(
        "guide",
        &display,
        &binary,
        &["--profile", "guide", "--server", &url],
        &tmp.path().join("guide"),
        &logs.join("guide-driver.log"),
    )
    .await?;
    // The astrologer is on a phone-sized window: screens stack.
    guide.resize(360, 740).await?;

    let result = consultation(&customer, &guide, &mut server, guide_id, tmp.path()).await;
    if result.is_err() {
        // Leave evidence: both windows as they were.
        let _ = customer.screenshot(&logs.join("failed-customer.png")).await;
        let _ = guide.screenshot(&logs.join("failed-guide.png")).await;
        eprintln!("logs and screenshots of the failure: {}", logs.display());
        let keep = tmp.keep();
        eprintln!("kept {}", keep.display());
    }
    customer.quit().await;
    guide.quit().await;
    result
}

async fn consultation(
    customer: &App,
    guide: &App,
    server: &mut TestServer,
    guide_id: i64,
    tmp: &Path,
) -> Result<()> {
    // ---- both log in
    log_in(guide, "guide", GUIDE_PHONE, None)
        .await
        .context("guide logs in")?;
    log_in(customer, "customer", CUSTOMER_PHONE, Some("login"))
        .await
        .context("customer logs in")?;

    // ---- the guide goes online; the customer sees it live
    guide.find("[data-testid=online-toggle]").await?;
    guide.click("[data-testid=online-toggle]").await?;
    let card = format!("[data-testid=guide-card][data-guide-id='{guide_id}']");
    customer
        .until(
            "the guide shows online in the list",
            &format!("const c = document.querySelector(\"{card}\"); return c && /online/i.test(c.textContent);"),
        )
        .await?;

    // ---- an empty wallet: the card offers a recharge instead of a request that would fail
    ensure!(balance(customer).await? == 0, "a new customer starts at 0");
    customer
        .find(&format!("{card} [data-testid=low-balance]"))
        .await
        .context("the card says the balance is too low")?;
    customer
        .click(&format!("{card} [data-testid=guide-recharge]"))
        .await?;
    customer.find("[data-testid=screen-wallet]").await?;
    customer
        .click("[data-testid=recharge-amount][data-amount='500']")
        .await?;
    customer.click("[data-testid=recharge-submit]").await?;
    customer
        .until(
            "the header shows the new balance",
            "const b = document.querySelector('[data-testid=wallet-balance]'); return b && !b.hidden && b.dataset.balance === '500';",
        )
        .await?;
    customer.find("[data-testid=ledger-entry]").await?;
    shot(customer, "wallet").await?;
    customer.click("[data-testid=back]").await?;
    customer
        .find(&format!("{card} [data-testid=guide-request]"))
        .await?;
    shot(customer, "guide-list").await?;

    // ---- the customer requests; the guide sees the request and accepts
    customer
        .click(&format!("{card} [data-testid=guide-request]"))
        .await?;
    customer.find("[data-testid=waiting]").await?;
    shot(customer, "waiting").await?;
    guide.find("[data-testid=request-card]").await?;
    shot(guide, "guide-request").await?;
    guide
        .click("[data-testid=request-card] [data-testid=request-accept]")
        .await?;

    // ---- both are in the chat, with the time the balance buys: 500 at 20 a minute
    customer.find("[data-testid=screen-chat]").await?;
    guide.find("[data-testid=screen-chat]").await?;
    customer.gone("[data-testid=waiting]").await?;
    customer
        .until(
            "the chat shows the time left",
            "const t = document.querySelector('[data-testid=time-left]'); return t && !t.hidden && /^2[45]:\\d\\d left$/.test(t.textContent);",
        )
        .await?;

    // ---- typing is seen, messages go both ways
    customer
        .type_into(
            "[data-testid=composer-input]",
            "Namaste, I was born in Pune",
        )
        .await?;
    guide
        .find("[data-testid=typing-indicator]")
        .await
        .context("guide sees the customer typing")?;
    customer
        .type_into("[data-testid=composer-input]", ENTER)
        .await?;
    guide
        .until(
            "the customer's message arrives",
            "return [...document.querySelectorAll('[data-testid=message] .text')].some(t => t.textContent === 'Namaste, I was born in Pune');",
        )
        .await?;
    guide.gone("[data-testid=typing-indicator]").await?;
    guide
        .type_into(
            "[data-testid=composer-input]",
            "Welcome! Let me look at your chart.",
        )
        .await?;
    customer
        .find("[data-testid=typing-indicator]")
        .await
        .context("customer sees the guide typing")?;
    guide.click("[data-testid=composer-send]").await?;
    customer
        .until(
            "the guide's reply arrives",
            "return [...document.querySelectorAll('[data-testid=message] .text')].some(t => t.textContent === 'Welcome! Let me look at your chart.');",
        )
        .await?;

    // ---- an image, sent and shown on the other side
    let image = test_image(tmp)?;
    customer
        .attach("[data-testid=composer-attach]", &image)
        .await?;
    guide
        .until(
            "the image is shown to the guide",
            "const i = document.querySelector('[data-testid=message][data-kind=image] img'); return i && i.complete && i.naturalWidth > 0 && i.naturalWidth;",
        )
        .await?;
    customer
        .until(
            "the customer's image is stored",
            "const m = document.querySelector('[data-testid=message][data-kind=image]'); return m && m.dataset.seq !== '' && m.dataset.status !== 'sending';",
        )
        .await?;
    shot(customer, "chat").await?;
    shot(guide, "guide-chat").await?;

    // ---- the network goes: three messages wait, the banner counts them
    let addr = server.addr;
    let dir = server.data_dir.clone();
    let tmp_dir = server.stop().await;
    let offline = [
        "first while offline",
        "second while offline",
        "third while offline",
    ];
    for text in offline {
        customer
            .type_into("[data-testid=composer-input]", text)
            .await?;
        customer
            .type_into("[data-testid=composer-input]", ENTER)
            .await?;
    }
    customer
        .until(
            "the offline banner counts 3 queued",
            "const b = document.querySelector('[data-testid=offline-banner]'); return b && !b.hidden && b.offsetParent !== null && /\\b3\\b/.test(b.textContent);",
        )
        .await?;
    shot(customer, "offline").await?;

    // ---- the server comes back on the same port: each arrives once, in order, and is read
    let mut back = TestServer::start_at(&dir, &addr.to_string(), |_| {}).await;
    customer.gone("[data-testid=offline-banner]").await?;
    guide
        .until(
            "the three queued messages reach the guide",
            "return [...document.querySelectorAll('[data-testid=message] .text')].filter(t => / while offline$/.test(t.textContent)).length === 3;",
        )
        .await?;
    let seen = bubbles(guide).await?;
    let arrived: Vec<&(String, String, String)> = seen
        .iter()
        .filter(|b| b.0.ends_with(" while offline"))
        .collect();
    ensure!(
        arrived.iter().map(|b| b.0.as_str()).collect::<Vec<_>>() == offline,
        "once each and in order: {arrived:?}"
    );
    let seqs: Vec<i64> = arrived.iter().map(|b| b.1.parse().unwrap_or(-1)).collect();
    ensure!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1) && seqs[0] > 0,
        "consecutive seqs: {seqs:?}"
    );
    customer
        .until(
            "the ticks reach read",
            "const ms = [...document.querySelectorAll('[data-testid=message]')].filter(m => / while offline$/.test((m.querySelector('.text')||{}).textContent||'')); return ms.length === 3 && ms.every(m => m.dataset.status === 'read');",
        )
        .await?;

    // ---- text that looks like HTML stays text
    let hostile = "<img src=x onerror=alert(1)>";
    customer
        .type_into("[data-testid=composer-input]", hostile)
        .await?;
    customer
        .type_into("[data-testid=composer-input]", ENTER)
        .await?;
    guide
        .until(
            "the HTML-looking message shows as text",
            "return [...document.querySelectorAll('[data-testid=message][data-kind=text]')].some(m => m.querySelector('.text').textContent === '<img src=x onerror=alert(1)>' && !m.querySelector('img'));",
        )
        .await?;
    ensure!(
        !guide.alert_open().await,
        "no script ran on the guide's side"
    );
    ensure!(
        !customer.alert_open().await,
        "no script ran on the customer's side"
    );

    // ---- the customer ends the chat and rates it
    customer.click("[data-testid=end-chat]").await?;
    if customer
        .find("[data-testid=end-chat-confirm]")
        .await
        .is_ok()
    {
        customer.click("[data-testid=end-chat-confirm]").await?;
    }
    customer.find("[data-testid=rating-star-5]").await?;
    // What it cost: every started minute at 20, and the balance dropped by exactly that.
    let charged = customer
        .until(
            "the rating screen says what was charged",
            "const a = document.querySelector('[data-testid=amount-charged]'); const m = a && !a.hidden && a.textContent.match(/₹(\\d+) charged/); return m && Number(m[1]);",
        )
        .await?
        .as_i64()
        .context("a charge")?;
    ensure!(
        charged > 0 && charged % 20 == 0,
        "whole minutes at 20: {charged}"
    );
    customer
        .until(
            "the balance drops by the charge",
            &format!("return document.querySelector('[data-testid=wallet-balance]').dataset.balance === '{}';", 500 - charged),
        )
        .await?;
    customer.click("[data-testid=rating-star-4]").await?;
    customer
        .type_into("[data-testid=rating-text]", "Clear and kind reading.")
        .await?;
    shot(customer, "rating").await?;
    customer.click("[data-testid=rating-submit]").await?;
    customer.gone("[data-testid=rating-submit]").await?;
    guide
        .until(
            "the guide sees the chat ended",
            "return /ended/i.test(document.body.textContent) && document.querySelector('[data-testid=composer-input]')?.disabled !== false;",
        )
        .await?;

    // The guide sees the rating among the ratings received.
    guide.click("[data-testid=nav-home]").await?;
    guide
        .until(
            "the guide sees the rating received",
            "return document.body.textContent.includes('Clear and kind reading.');",
        )
        .await?;
    shot(guide, "guide-ratings").await?;

    // ---- the guide sees the earning: the charge less the platform's 30%
    let earned = charged - charged * 30 / 100;
    guide
        .until(
            "the guide's home shows today's earnings",
            &format!("const e = document.querySelector('[data-testid=earnings-summary-today]'); return e && e.textContent === '₹{earned}';"),
        )
        .await?;
    guide.click("[data-testid=open-earnings]").await?;
    guide.find("[data-testid=screen-earnings]").await?;
    guide.find("[data-testid=earning-entry]").await?;
    let total = guide.text("[data-testid=earnings-total]").await?;
    ensure!(total == format!("₹{earned}"), "total earned {total:?}");
    shot(guide, "guide-earnings").await?;

    // ---- the chat list, and settings
    customer.find("[data-testid=chat-list-item]").await?;
    shot(customer, "chat-list").await?;
    customer.click("[data-testid=nav-settings]").await?;
    customer.find("[data-testid=screen-settings]").await?;
    shot(customer, "settings").await?;

    // ---- the money runs out: one-second minutes, so the balance lasts seconds
    back.stop().await;
    let _fast = TestServer::start_at(&dir, &addr.to_string(), |c| {
        c.billing_minute = std::time::Duration::from_secs(1)
    })
    .await;
    running_out(customer, guide, &card, 500 - charged).await?;
    drop(tmp_dir);
    Ok(())
}

/// The customer's balance as the header shows it.
async fn balance(app: &App) -> Result<i64> {
    let v = app
        .until(
            "the header shows a balance",
            "const b = document.querySelector('[data-testid=wallet-balance]'); return b && !b.hidden && b.dataset.balance;",
        )
        .await?;
    Ok(v.as_str().unwrap_or_default().parse()?)
}

/// A second chat on a balance of `left` at 20 a (one-second) minute: the banner warns in the
/// last minute, a recharge from it extends the chat without leaving it, and at the new end the
/// server closes it and charges everything.
async fn running_out(customer: &App, guide: &App, card: &str, left: i64) -> Result<()> {
    customer.click("[data-testid=nav-home]").await?;
    customer
        .until(
            "the guide is online again after the restart",
            &format!("const b = document.querySelector(\"{card} [data-testid=guide-request]\"); return b && !b.disabled && !b.hidden;"),
        )
        .await?;
    customer
        .click(&format!("{card} [data-testid=guide-request]"))
        .await?;
    guide.click("[data-testid=nav-home]").await?;
    guide
        .click("[data-testid=request-card] [data-testid=request-accept]")
        .await?;
    customer.find("[data-testid=screen-chat]").await?;
    customer
        .until(
            "the last minute's banner shows",
            "const b = document.querySelector('[data-testid=ending-soon]'); return b && !b.hidden && b.offsetParent !== null;",
        )
        .await?;
    guide
        .find("[data-testid=ending-soon]")
        .await
        .context("the guide is warned too")?;
    shot(customer, "ending-soon").await?;
    customer.click("[data-testid=ending-soon-recharge]").await?;
    customer
        .until(
            "the recharge moves the end: the banner goes, the chat stays",
            "const b = document.querySelector('[data-testid=ending-soon]'); return b && b.hidden && !!document.querySelector('[data-testid=screen-chat]');",
        )
        .await?;
    // Ten more (one-second) minutes at 20 were bought: the server warns again before the new
    // end, and at it ends the chat and charges everything.
    let minutes_left = std::time::Duration::from_secs(60);
    customer
        .until_within(
            "the server warns again before the new end",
            "const b = document.querySelector('[data-testid=ending-soon]'); return b && !b.hidden && b.offsetParent !== null;",
            minutes_left,
        )
        .await?;
    let charged = customer
        .until(
            "the server ends the chat when the balance is used up",
            "const a = document.querySelector('[data-testid=amount-charged]'); const m = a && !a.hidden && a.textContent.match(/₹(\\d+) charged/); return m && Number(m[1]);",
        )
        .await?
        .as_i64()
        .context("a charge")?;
    ensure!(
        charged == left + 200,
        "all of {left} + 200 was spent: {charged}"
    );
    ensure!(balance(customer).await? == 0, "nothing left");
    guide
        .until(
            "the guide sees why it ended",
            "return /balance ran out/i.test(document.body.textContent);",
        )
        .await?;
    Ok(())
}
