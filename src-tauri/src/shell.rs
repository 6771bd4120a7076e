//! The shell's state: the engine (replaced when the server changes), the event hub, and
//! whether the window is in front (notifications are for when it is not).

use crate::hub::EventHub;
use crate::options::{Paths, Settings};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use tara_core::{Client, ClientConfig, Event, Result, TokenStoreKind};
use tauri::{AppHandle, Manager};
use tokio::sync::mpsc::UnboundedReceiver;

/// Everything the commands share.
pub struct Shell {
    pub app: AppHandle,
    pub profile: String,
    pub paths: Paths,
    pub events: EventHub,
    pub focused: AtomicBool,
    client: RwLock<Client>,
    server_url: RwLock<String>,
    // Serializes server switches.
    switching: tokio::sync::Mutex<()>,
}

impl Shell {
    /// Starts the engine for `server_url`.
    pub async fn start(
        app: AppHandle,
        profile: String,
        paths: Paths,
        server_url: String,
    ) -> Result<Arc<Self>> {
        let (client, rx) = Client::start(client_config(&profile, &paths, &server_url)).await?;
        let shell = Arc::new(Self {
            app,
            profile,
            paths,
            events: EventHub::default(),
            focused: AtomicBool::new(true),
            client: RwLock::new(client),
            server_url: RwLock::new(server_url),
            switching: tokio::sync::Mutex::new(()),
        });
        tauri::async_runtime::spawn(pump(Arc::downgrade(&shell), rx));
        Ok(shell)
    }

    /// The engine (a cheap handle).
    pub fn client(&self) -> Client {
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The server in use.
    pub fn server_url(&self) -> String {
        self.server_url
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// For `app_info`.
    pub async fn info(&self) -> Value {
        let client = self.client();
        let queued = client
            .outbox()
            .await
            .map(|items| items.iter().filter(|i| i.state == "queued").count() as i64)
            .unwrap_or(0);
        let connection = *client.connection().borrow();
        crate::commands::info_json(
            &self.profile,
            &self.server_url(),
            &self.paths.data_dir(&self.server_url()),
            client.identity(),
            connection,
            queued,
        )
    }

    /// Moves to another server: the session there is not ours, so sign out here first (the
    /// outbox goes with it), then start a fresh engine and remember the choice.
    pub async fn switch_server(self: &Arc<Self>, url: String) -> Result<()> {
        let _one_at_a_time = self.switching.lock().await;
        if url == self.server_url() {
            return Ok(());
        }
        let old = self.client();
        if old.identity().is_some() {
            old.sign_out().await?;
        }
        old.disconnect();
        let (client, rx) = Client::start(client_config(&self.profile, &self.paths, &url)).await?;
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = client;
        *self.server_url.write().unwrap_or_else(|p| p.into_inner()) = url.clone();
        tauri::async_runtime::spawn(pump(Arc::downgrade(self), rx));
        let settings = Settings {
            server_url: Some(url),
        };
        if let Err(e) = settings.save(&self.paths.profile_dir) {
            tracing::warn!(error = %e, "could not save settings");
        }
        Ok(())
    }

    /// Brings the window forward (a second start of the profile, a clicked notification).
    pub fn show(&self) {
        if let Some(w) = self.app.get_webview_window(crate::MAIN) {
            // Phones have no minimized windows (Tauri has the call on desktop only).
            #[cfg(desktop)]
            let _ = w.unminimize();
            let _ = w.show();
            let _ = w.set_focus();
        }
    }

    fn in_front(&self) -> bool {
        let visible = self
            .app
            .get_webview_window(crate::MAIN)
            .and_then(|w| w.is_visible().ok())
            .unwrap_or(false);
        visible && self.focused.load(Ordering::Relaxed)
    }
}

fn client_config(profile: &str, paths: &Paths, server_url: &str) -> ClientConfig {
    let mut config = ClientConfig::new(server_url, paths.data_dir(server_url));
    // TARA_DATA_DIR moves everything, the sign-in too: a test or a portable install must
    // not read or overwrite the keychain entry of the person's real profile.
    if !paths.relocated {
        config.token_store = TokenStoreKind::Keychain {
            service: "app.tara.chat".into(),
            account: format!("{profile} {server_url}"),
        };
    }
    config
}

/// Engine events to the UI, and notices to the desktop when the window is not in front. Ends
/// when its engine is replaced.
async fn pump(shell: std::sync::Weak<Shell>, mut rx: UnboundedReceiver<Event>) {
    while let Some(event) = rx.recv().await {
        let Some(shell) = shell.upgrade() else { return };
        if let Event::Notice {
            kind,
            consultation_id,
            title,
            body,
        } = &event
        {
            if !shell.in_front() {
                let opener = Arc::downgrade(&shell);
                let id = consultation_id.clone();
                crate::notify::show(&shell.app, *kind, title.clone(), body.clone(), move || {
                    if let Some(s) = opener.upgrade() {
                        s.show();
                        s.events.push(serde_json::json!({
                            "type": "open_consultation",
                            "consultation_id": id,
                        }));
                    }
                });
            }
        }
        match serde_json::to_value(&event) {
            Ok(v) => shell.events.push(v),
            Err(e) => tracing::error!(error = %e, "event not serializable"),
        }
    }
}
