//! The guide's screens at 412 px, the width of most large Android phones (app.rs runs the
//! whole consultation at 360 px): one real app window under Xvfb through tauri-driver, the
//! customer played over the API of a real server. On every screen the guide uses, each control
//! they need is shown, whole and inside the window, and nothing scrolls sideways.

#[path = "../../crates/server/tests/common/mod.rs"]
#[allow(unused_imports)]
mod server;
#[allow(dead_code)]
mod support;

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use server::TestServer;
use std::path::PathBuf;
use support::webdriver::{App, Display, ENTER};

const WIDTH: u32 = 412;
const GUIDE_PHONE: &str = "9000000412";

/// Fails unless every selector shows an element whose box lies inside the window's width, and
/// the page is no wider than the window.
async fn complete(app: &App, screen: &str, selectors: &[&str]) -> Result<()> {
    let report = app
        .js(
            "const vw = document.documentElement.clientWidth;
             const wide = document.documentElement.scrollWidth > vw + 1;
             const problems = arguments[0].map(sel => {
               const shown = [...document.querySelectorAll(sel)].filter(e =>
                 e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden');
               if (shown.length === 0) return sel + ': not shown';
               const r = shown[0].getBoundingClientRect();
               if (r.width < 1 || r.height < 1) return sel + ': empty box';
               if (r.left < -1 || r.right > vw + 1) return sel + `: ${r.left}..${r.right} of ${vw}`;
               return null;
             }).filter(Boolean);
             return {vw, inner: window.innerWidth, wide, problems};",
            json!([selectors]),
        )
        .await?;
    let problems = report["problems"].as_array().cloned().unwrap_or_default();
    ensure!(
        report["wide"] == false && problems.is_empty(),
        "{screen} at {WIDTH} px is not complete: {report}"
    );
    ensure!(
        report["inner"]
            .as_u64()
            .is_some_and(|w| w <= u64::from(WIDTH) && w >= 380),
        "the window is {} px wide, not {WIDTH}",
        report["inner"]
    );
    let dir = std::env::var_os("TARA_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots"));
    app.screenshot(&dir.join(format!("guide-{WIDTH}-{screen}.png")))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_screens_are_complete_at_412_px() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let server = TestServer::start().await;
    let guide_id = server
        .add_guide(&format!("+91{GUIDE_PHONE}"), "Asha Venkataraman-Iyer")
        .await;
    let display = Display::start()?;
    let guide = App::launch(
        "guide",
        &display,
        &PathBuf::from(env!("CARGO_BIN_EXE_tara-app")),
        &[
            "--profile",
            "guide",
            "--server",
            &format!("http://{}", server.addr),
        ],
        &tmp.path().join("guide"),
        &tmp.path().join("guide-driver.log"),
    )
    .await?;
    guide.resize(WIDTH, 915).await?;
    let result = screens(&guide, &server, guide_id).await;
    if result.is_err() {
        let _ = guide.screenshot(&tmp.path().join("failed-guide.png")).await;
        eprintln!("kept {}", tmp.keep().display());
    }
    guide.quit().await;
    result
}

async fn screens(guide: &App, server: &TestServer, guide_id: i64) -> Result<()> {
    // ---- login
    guide.find("[data-testid=screen-login]").await?;
    guide.click("[data-testid=login-role-guide]").await?;
    guide
        .type_into("[data-testid=login-phone]", GUIDE_PHONE)
        .await?;
    complete(
        guide,
        "login",
        &["[data-testid=login-phone]", "[data-testid=login-send-otp]"],
    )
    .await?;
    guide.click("[data-testid=login-send-otp]").await?;
    let code = guide.text("[data-testid=login-dev-otp]").await?;
    guide
        .type_into("[data-testid=login-otp]", code.trim())
        .await?;
    complete(
        guide,
        "login-code",
        &["[data-testid=login-otp]", "[data-testid=login-verify]"],
    )
    .await?;
    guide.click("[data-testid=login-verify]").await?;
    guide.gone("[data-testid=screen-login]").await?;

    // ---- home: the online switch and the way around
    guide.find("[data-testid=screen-requests]").await?;
    guide.click("[data-testid=online-toggle]").await?;
    let nav = [
        "[data-testid=nav-home]",
        "[data-testid=nav-chats]",
        "[data-testid=nav-settings]",
    ];
    let mut home = vec!["[data-testid=online-toggle]"];
    home.extend(nav);
    complete(guide, "home", &home).await?;

    // ---- a request with birth details, from a customer with a long name
    let customer = server.customer("9811100412").await;
    server
        .patch(
            "/auth/profile",
            Some(&customer),
            json!({"display_name": "Venkatalakshmi Subramaniam-Raghunathan"}),
        )
        .await
        .ok::<Value>();
    let profile: Value = server
        .post(
            &format!("/customers/{}/profile", customer.id),
            Some(&customer),
            json!({"name": "Venkatalakshmi Subramaniam-Raghunathan", "date_of_birth": "1990-04-12",
                   "time_of_birth": "05:45", "birth_city": "Thiruvananthapuram",
                   "birth_country": "India", "preferred_language": "ta"}),
        )
        .await
        .ok();
    let request: Value = server
        .post(
            "/consultation",
            Some(&customer),
            json!({"guide_id": guide_id, "mode": "chat", "service_type": "consultation",
                   "customer_profile_id": profile["profile_id"]}),
        )
        .await
        .created();
    let id = request["consultation_id"]
        .as_str()
        .context("id")?
        .to_owned();
    guide.find("[data-testid=request-card]").await?;
    complete(
        guide,
        "request",
        &[
            "[data-testid=request-card]",
            "[data-testid=request-accept]",
            "[data-testid=request-reject]",
        ],
    )
    .await?;
    guide.click("[data-testid=request-accept]").await?;

    // ---- the chat, with a long unbroken word from the customer
    guide.find("[data-testid=screen-chat]").await?;
    server
        .post(
            &format!("/consultation/{id}/join"),
            Some(&customer),
            json!({"mode": "chat"}),
        )
        .await
        .ok::<Value>();
    let long = format!(
        "Namaste! {} is my birth star?",
        "Uttarabhadrapada".repeat(4)
    );
    server
        .post(
            &format!("/consultation/{id}/messages"),
            Some(&customer),
            json!({"client_msg_id": server::cmid(), "kind": "text", "content": long}),
        )
        .await;
    guide
        .until(
            "the customer's message arrives",
            "return [...document.querySelectorAll('[data-testid=message] .text')].some(t => t.textContent.startsWith('Namaste!'));",
        )
        .await?;
    guide
        .type_into("[data-testid=composer-input]", "Welcome! Let me look.")
        .await?;
    guide
        .type_into("[data-testid=composer-input]", ENTER)
        .await?;
    guide
        .until(
            "the reply is stored",
            "return [...document.querySelectorAll('[data-testid=message]')].some(m => (m.querySelector('.text')||{}).textContent === 'Welcome! Let me look.' && m.dataset.seq !== '');",
        )
        .await?;
    complete(
        guide,
        "chat",
        &[
            "[data-testid=back]",
            "[data-testid=end-chat]",
            "[data-testid=message]",
            "[data-testid=composer-input]",
            "[data-testid=composer-attach]",
            "[data-testid=composer-send]",
        ],
    )
    .await?;

    // ---- ended and rated by the customer; the guide reads the rating at home
    server.complete(&customer, &id).await;
    server
        .post(
            &format!("/consultation/{id}/feedback"),
            Some(&customer),
            json!({"rating": 5, "feedback_text": "Very patient and clear, thank you so much"}),
        )
        .await;
    guide
        .until(
            "the guide sees the chat ended",
            "return document.querySelector('[data-testid=composer-input]')?.disabled !== false;",
        )
        .await?;
    guide.click("[data-testid=nav-home]").await?;
    guide
        .until(
            "the rating shows",
            "return document.body.textContent.includes('Very patient and clear');",
        )
        .await?;
    complete(guide, "ratings", &home).await?;

    // ---- the chat list and settings
    guide.click("[data-testid=nav-chats]").await?;
    guide.find("[data-testid=chat-list-item]").await?;
    let mut chats = vec!["[data-testid=chat-list-item]"];
    chats.extend(nav);
    complete(guide, "chats", &chats).await?;
    guide.click("[data-testid=nav-settings]").await?;
    guide.find("[data-testid=screen-settings]").await?;
    let mut settings = vec!["[data-testid=screen-settings]"];
    settings.extend(nav);
    complete(guide, "settings", &settings).await
}
