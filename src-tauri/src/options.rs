//! What an instance is: its profile, its server, and where its files go.

use std::path::{Path, PathBuf};

/// The server a fresh install talks to: the one `cargo xtask run` starts.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7700";

/// The command line of the app (desktop; phones start with the defaults).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tara-app",
    version,
    about = "Tara: chat consultations with astrologers"
)]
pub struct Args {
    /// A separate instance with its own data folder and sign-in, so a customer and a guide can
    /// run side by side on one machine.
    #[arg(long, default_value = "default", value_parser = profile_name)]
    pub profile: String,
    /// The server to use (also TARA_SERVER); without it, the one chosen in settings.
    #[arg(long, env = "TARA_SERVER")]
    pub server: Option<String>,
}

fn profile_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("a profile name is 1 to 40 letters, digits, '-' or '_'".into())
    }
}

impl Args {
    /// The command line; `--help` and mistakes end the process with clap's message.
    pub fn from_env() -> Self {
        use clap::Parser;
        match Args::try_parse() {
            Ok(a) => a,
            Err(e)
                if matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ) =>
            {
                e.exit()
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        }
    }
}

impl Args {
    /// Phones have one profile and start with the saved server.
    #[cfg(mobile)]
    pub fn default_mobile() -> Self {
        Self {
            profile: "default".into(),
            server: None,
        }
    }
}

/// Where one profile keeps its files.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<base>/profiles/<profile>`: the lock, the settings, and one folder per server.
    pub profile_dir: PathBuf,
    /// Log files.
    pub log_dir: PathBuf,
    /// Whether TARA_DATA_DIR moved everything (then nothing goes to the keychain either).
    pub relocated: bool,
}

impl Paths {
    /// `TARA_DATA_DIR` moves all local data; otherwise the platform's folders for the app.
    pub fn resolve(profile: &str, app_data: &Path, app_log: &Path) -> Self {
        let relocated = std::env::var_os("TARA_DATA_DIR").filter(|v| !v.is_empty());
        let (base, log_dir) = match &relocated {
            Some(dir) => (PathBuf::from(dir), PathBuf::from(dir).join("logs")),
            None => (app_data.to_path_buf(), app_log.to_path_buf()),
        };
        let profile_dir = base.join("profiles").join(profile);
        Self {
            profile_dir,
            log_dir,
            relocated: relocated.is_some(),
        }
    }
}

impl Paths {
    /// The engine's store, images and (without a keychain) refresh token for one server. Each
    /// server has its own: a sign-in or a chat of one server is never shown to, or sent to,
    /// another.
    pub fn data_dir(&self, server_url: &str) -> PathBuf {
        self.profile_dir
            .join("servers")
            .join(server_slug(server_url))
    }
}

/// A folder name for a server: `http://127.0.0.1:7700` → `http_127.0.0.1_7700`.
fn server_slug(url: &str) -> String {
    let mut out = String::new();
    for c in url.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            c
        } else {
            '_'
        };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out
}

/// What a profile remembers between runs.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// The server chosen in settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
}

impl Settings {
    fn file(dir: &Path) -> PathBuf {
        dir.join("settings.json")
    }

    /// The saved settings, or the defaults (a broken file is logged and ignored, not fatal).
    pub fn load(dir: &Path) -> Self {
        match std::fs::read(Self::file(dir)) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "settings.json unreadable; using defaults");
                Self::default()
            }),
            Err(_) => Self::default(),
        }
    }

    /// Saves them (written aside, then renamed).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join("settings.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(tmp, Self::file(dir))
    }
}

/// Checks a server URL a person typed: http(s), a host, no path beyond `/`.
pub fn normalize_server(url: &str) -> Result<String, String> {
    let u = url.trim().trim_end_matches('/');
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or("the server address starts with http:// or https://")?;
    if rest.is_empty() || rest.contains(['/', ' ', '?', '#']) {
        return Err("the server address is a scheme and a host, like http://127.0.0.1:7700".into());
    }
    Ok(u.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_checked() {
        assert_eq!(
            normalize_server(" http://127.0.0.1:7700/ ").unwrap(),
            "http://127.0.0.1:7700"
        );
        assert_eq!(
            normalize_server("https://tara.example").unwrap(),
            "https://tara.example"
        );
        assert!(normalize_server("127.0.0.1:7700").is_err());
        assert!(normalize_server("http://").is_err());
        assert!(normalize_server("http://host/api").is_err());
    }

    #[test]
    fn each_server_has_its_own_folder() {
        let p = Paths::resolve("customer", Path::new("/d"), Path::new("/l"));
        let a = p.data_dir("http://127.0.0.1:7700");
        assert_eq!(
            a,
            Path::new("/d/profiles/customer/servers/http_127.0.0.1_7700")
        );
        assert_ne!(a, p.data_dir("https://127.0.0.1:7700"));
        assert_ne!(a, p.data_dir("http://127.0.0.1:7701"));
    }

    #[test]
    fn profile_names_are_folder_safe() {
        assert!(profile_name("guide-2").is_ok());
        assert!(profile_name("../x").is_err());
        assert!(profile_name("").is_err());
    }
}
