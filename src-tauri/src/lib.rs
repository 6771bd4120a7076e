//! tara-app: the Tauri shell of Tara. The UI (`../ui`, static files) calls the commands of
//! [`commands`]; the engine is tara-core; this crate only wires the two together and adds what
//! belongs to a desktop: one instance per profile, notifications, logs.
//!
//! - [`options`]: the command line (`--profile`, `--server`), folders, saved settings.
//! - [`instance`]: one instance per profile.
//! - [`shell`]: the engine handle and the event pump; [`hub`]: events held until the UI is ready.
//! - [`notify`]: desktop notifications.

pub mod commands;
pub mod hub;
pub mod instance;
pub mod notify;
pub mod options;
pub mod shell;

use options::{Args, Paths, Settings};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tauri::{Manager, WebviewUrl, WebviewWindowBuilder, WindowEvent};

/// The label of the one window.
pub const MAIN: &str = "main";

/// Starts the app (desktop `main`, and the entry point of mobile builds).
#[cfg_attr(mobile, tauri::mobile_entry_point)]
pub fn run() {
    #[cfg(desktop)]
    let args = Args::from_env();
    #[cfg(mobile)]
    let args = Args::default_mobile();

    let result = tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![
            commands::events_subscribe,
            commands::app_info,
            commands::set_server_url,
            commands::otp_request,
            commands::otp_verify,
            commands::sign_out,
            commands::me,
            commands::sessions,
            commands::session_revoke,
            commands::guides,
            commands::guide_me,
            commands::guide_set_online,
            commands::guide_ratings,
            commands::profiles,
            commands::profile_create,
            commands::requests,
            commands::chat_list,
            commands::consultation_get,
            commands::consultation_request,
            commands::consultation_cancel,
            commands::consultation_accept,
            commands::consultation_reject,
            commands::consultation_join,
            commands::consultation_complete,
            commands::consultation_rate,
            commands::messages,
            commands::send_text,
            commands::send_image,
            commands::retry,
            commands::typing,
            commands::mark_read,
            commands::image,
            commands::wallet,
            commands::wallet_ledger,
            commands::wallet_recharge,
            commands::guide_earnings,
        ])
        .setup(move |app| setup(app, args.clone()))
        .on_window_event(|window, event| {
            let Some(shell) = window.try_state::<Arc<shell::Shell>>() else {
                return;
            };
            if let WindowEvent::Focused(f) = event {
                shell.focused.store(*f, Ordering::Relaxed);
            }
        })
        .on_page_load(|webview, payload| {
            // A reload drops the page's channel: hold events until it subscribes again.
            if payload.event() == tauri::webview::PageLoadEvent::Started {
                if let Some(shell) = webview.try_state::<Arc<shell::Shell>>() {
                    shell.events.detach();
                }
            }
        })
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("tara-app: {e}");
        std::process::exit(1);
    }
}

fn setup(app: &mut tauri::App, args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let path = app.path();
    let paths = Paths::resolve(&args.profile, &path.app_data_dir()?, &path.app_log_dir()?);

    let claim = instance::claim(&paths.profile_dir)?;
    let mut instance = match claim {
        instance::Claim::First(i) => i,
        instance::Claim::Running => {
            eprintln!(
                "tara-app: profile '{}' is already open; brought it to the front",
                args.profile
            );
            std::process::exit(0);
        }
    };
    init_logs(&paths, &args.profile);

    let settings = Settings::load(&paths.profile_dir);
    let server = match args.server.as_deref().or(settings.server_url.as_deref()) {
        Some(s) => options::normalize_server(s)
            .map_err(|e| format!("--server / TARA_SERVER {s:?}: {e}"))?,
        None => options::DEFAULT_SERVER.to_owned(),
    };
    tracing::info!(profile = %args.profile, %server, data = %paths.data_dir(&server).display(), "starting");

    let shell = tauri::async_runtime::block_on(shell::Shell::start(
        app.handle().clone(),
        args.profile.clone(),
        paths,
        server,
    ))
    .map_err(|e| format!("could not open the local store: {e}"))?;
    app.manage(shell.clone());
    let weak = Arc::downgrade(&shell);
    instance.listen(move || {
        if let Some(s) = weak.upgrade() {
            s.show();
        }
    });
    // Held for the life of the app: dropping it frees the profile.
    app.manage(InstanceGuard(std::sync::Mutex::new(Some(instance))));

    let title = if args.profile == "default" {
        "Tara".to_owned()
    } else {
        format!("Tara — {}", args.profile)
    };
    let builder = WebviewWindowBuilder::new(app, MAIN, WebviewUrl::App("index.html".into()));
    #[cfg(desktop)]
    let builder = builder
        .title(title)
        .inner_size(1120.0, 760.0)
        .min_inner_size(360.0, 560.0);
    #[cfg(mobile)]
    let _ = title;
    builder.build()?;
    Ok(())
}

struct InstanceGuard(#[allow(dead_code)] std::sync::Mutex<Option<instance::Instance>>);

/// Logs go to `<log dir>/<profile>.log` (and stderr); `RUST_LOG` picks the level.
fn init_logs(paths: &Paths, profile: &str) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tara_core=info,tara_app_lib=info".into());
    let file = std::fs::create_dir_all(&paths.log_dir).and_then(|_| {
        std::fs::File::options()
            .create(true)
            .append(true)
            .open(paths.log_dir.join(format!("{profile}.log")))
    });
    let file_layer = file.ok().map(|f| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(file_layer)
        .try_init();
}
