//! Where the refresh token lives: the OS keychain, or an owner-only file in the data folder.
//! The access token is never written anywhere; it lives in memory only.

use crate::config::TokenStoreKind;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Keeps one refresh token.
#[derive(Debug, Clone)]
pub struct TokenStore {
    kind: TokenStoreKind,
    file: PathBuf,
}

impl TokenStore {
    /// A store of this kind; the file lives in `data_dir`.
    pub fn new(kind: TokenStoreKind, data_dir: &Path) -> Self {
        Self {
            kind,
            file: data_dir.join("refresh-token"),
        }
    }

    /// The stored token, if any.
    pub async fn load(&self) -> Result<Option<String>> {
        let this = self.clone();
        blocking(move || this.load_now()).await
    }

    /// Stores a token, replacing the previous one.
    pub async fn save(&self, token: &str) -> Result<()> {
        let this = self.clone();
        let token = token.to_owned();
        blocking(move || this.save_now(&token)).await
    }

    /// Holds the profile's refresh lock until the guard is dropped. A refresh spends the stored
    /// token, so two processes on one profile (the app and `tara-cli`, or `tara-cli tail` and
    /// another command) that refreshed at once would present the same token twice, and the
    /// server revokes a session whose token comes back. Under the lock, the token is read
    /// afresh, spent, and its successor stored before the next process reads it.
    pub async fn exclusive(&self) -> Result<std::fs::File> {
        let path = self.file.with_file_name("refresh-token.lock");
        blocking(move || {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(Error::storage)?;
            f.lock().map_err(Error::storage)?;
            Ok(f)
        })
        .await
    }

    /// The key of the stored token's refresh, made and kept on first asking, so that a refresh
    /// whose answer never came (a cut link, the app killed) is sent again as the same refresh
    /// and the server does not take it for a stolen token. Dropped once a token replaces this
    /// one ([`Self::save`] and [`Self::clear`]).
    pub async fn refresh_key(&self) -> Result<String> {
        let path = self.key_file();
        blocking(move || match std::fs::read_to_string(&path) {
            Ok(k) if !k.trim().is_empty() => Ok(k.trim().to_owned()),
            Ok(_) => fresh_key(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh_key(&path),
            Err(e) => Err(Error::storage(e)),
        })
        .await
    }

    fn key_file(&self) -> PathBuf {
        self.file.with_file_name("refresh-token.key")
    }

    fn drop_key(&self) -> Result<()> {
        match std::fs::remove_file(self.key_file()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::storage(e)),
        }
    }

    /// Forgets the token.
    pub async fn clear(&self) -> Result<()> {
        let this = self.clone();
        blocking(move || this.clear_now()).await
    }

    fn load_now(&self) -> Result<Option<String>> {
        if let Some((service, account)) = self.keychain() {
            match keychain::load(service, account) {
                Ok(found) => return Ok(found),
                Err(e) => tracing::debug!(error = %e, "no keychain; using the token file"),
            }
        }
        match std::fs::read_to_string(&self.file) {
            Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_owned())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::storage(e)),
        }
    }

    fn save_now(&self, token: &str) -> Result<()> {
        // The token first: a crash between the two leaves the new token with the old key,
        // which the server takes as a first refresh.
        self.store_token(token)?;
        self.drop_key()
    }

    fn store_token(&self, token: &str) -> Result<()> {
        if let Some((service, account)) = self.keychain() {
            match keychain::save(service, account, token) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&self.file);
                    return Ok(());
                }
                Err(e) => tracing::debug!(error = %e, "no keychain; using the token file"),
            }
        }
        write_private(&self.file, token.as_bytes())
    }

    fn clear_now(&self) -> Result<()> {
        self.drop_key()?;
        if let Some((service, account)) = self.keychain() {
            keychain::clear(service, account);
        }
        match std::fs::remove_file(&self.file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::storage(e)),
        }
    }

    fn keychain(&self) -> Option<(&str, &str)> {
        match &self.kind {
            TokenStoreKind::Keychain { service, account } => Some((service, account)),
            TokenStoreKind::File => None,
        }
    }
}

/// The OS keychain through `keyring`: the Secret Service on Linux, the Keychain on macOS and
/// iOS, the Credential Manager on Windows.
#[cfg(not(target_os = "android"))]
mod keychain {
    fn entry(service: &str, account: &str) -> Result<keyring::Entry, String> {
        keyring::Entry::new(service, account).map_err(|e| e.to_string())
    }

    /// The token, or None if none is stored; `Err` when there is no keychain to ask.
    pub fn load(service: &str, account: &str) -> Result<Option<String>, String> {
        match entry(service, account)?.get_password() {
            Ok(t) => Ok(Some(t)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn save(service: &str, account: &str, token: &str) -> Result<(), String> {
        entry(service, account)?
            .set_password(token)
            .map_err(|e| e.to_string())
    }

    pub fn clear(service: &str, account: &str) {
        if let Ok(e) = entry(service, account) {
            let _ = e.delete_credential();
        }
    }
}

/// Android: `keyring` has no store there (it would fall back to memory and lose the sign-in
/// at every start), so the token goes to the owner-only file. The app's data folder is
/// private to the app on Android; an Android Keystore backend would need JNI (not built).
#[cfg(target_os = "android")]
mod keychain {
    const NONE: &str = "no keychain on Android";

    pub fn load(_service: &str, _account: &str) -> Result<Option<String>, String> {
        Err(NONE.into())
    }

    pub fn save(_service: &str, _account: &str, _token: &str) -> Result<(), String> {
        Err(NONE.into())
    }

    pub fn clear(_service: &str, _account: &str) {}
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::storage(format!("token store: {e}")))?
}

fn fresh_key(path: &Path) -> Result<String> {
    let key = uuid::Uuid::new_v4().to_string();
    write_private(path, key.as_bytes())?;
    Ok(key)
}

/// Writes a file only its owner can read, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_store_keeps_one_owner_only_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::new(TokenStoreKind::File, dir.path());
        assert_eq!(store.load().await.expect("load"), None);
        store.save("first").await.expect("save");
        store.save("second").await.expect("save");
        assert_eq!(store.load().await.expect("load").as_deref(), Some("second"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("refresh-token"))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "nobody but the owner reads the token");
        }
        store.clear().await.expect("clear");
        assert_eq!(store.load().await.expect("load"), None);
    }
}
