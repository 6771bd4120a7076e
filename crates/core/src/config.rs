//! How a client is made: which server, which data folder, where the refresh token lives.

use std::path::PathBuf;
use tara_protocol::auth::DeviceInfo;

/// Where the refresh token is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenStoreKind {
    /// The OS keychain under this service and account, falling back to the file when no
    /// keychain answers.
    Keychain {
        /// Keychain service name.
        service: String,
        /// Keychain account (one per profile).
        account: String,
    },
    /// An owner-only file in the data folder (tests, scripts).
    File,
}

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://127.0.0.1:7700` (no trailing slash needed).
    pub server_url: String,
    /// The local store, compressed images and (for the file store) the refresh token.
    pub data_dir: PathBuf,
    /// Where the refresh token lives.
    pub token_store: TokenStoreKind,
    /// Sent at login.
    pub device_info: DeviceInfo,
    /// Connect the realtime link as soon as someone is signed in (the app). Scripts that only
    /// make REST calls turn this off and call `Client::connect` when they need the link.
    pub auto_connect: bool,
}

impl ClientConfig {
    /// A client of `server_url` keeping its data in `data_dir`, with the file token store.
    pub fn new(server_url: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            server_url: server_url.into().trim_end_matches('/').to_owned(),
            data_dir: data_dir.into(),
            token_store: TokenStoreKind::File,
            device_info: DeviceInfo {
                device_type: "desktop".into(),
                platform: std::env::consts::OS.into(),
                browser: None,
            },
            auto_connect: true,
        }
    }

    /// The REST base, `…/api/v1`.
    pub fn api_base(&self) -> String {
        format!("{}/api/v1", self.server_url)
    }

    /// The realtime URL, `ws(s)://…/api/v1/realtime`.
    pub fn realtime_url(&self) -> String {
        let base = self.api_base();
        let ws = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base
        };
        format!("{ws}/realtime")
    }
}
