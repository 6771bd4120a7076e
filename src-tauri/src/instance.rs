//! One instance per profile: the first holds a lock in the profile folder; a second start asks
//! the first (over a Unix socket beside the lock) to come forward, and exits.

use std::fs::File;
use std::path::Path;

/// Held for the life of the instance.
pub struct Instance {
    _lock: File,
    /// Bound as soon as the lock is held, so a knock during start-up waits in the queue.
    #[cfg(unix)]
    listener: Option<std::os::unix::net::UnixListener>,
}

/// What starting found.
pub enum Claim {
    /// This is the only instance of the profile.
    First(Instance),
    /// Another instance has the profile; it was asked to show itself.
    Running,
}

/// Takes the profile, or wakes whoever has it.
pub fn claim(profile_dir: &Path) -> std::io::Result<Claim> {
    std::fs::create_dir_all(profile_dir)?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(profile_dir.join("instance.lock"))?;
    match lock.try_lock() {
        Ok(()) => {
            #[cfg(unix)]
            let listener = {
                // A socket left by a crash is ours to replace: we hold the lock.
                let path = profile_dir.join("instance.sock");
                let _ = std::fs::remove_file(&path);
                std::os::unix::net::UnixListener::bind(&path)
                    .map_err(|e| {
                        tracing::warn!(error = %e, "no instance socket; a second start will not bring this one forward");
                    })
                    .ok()
            };
            Ok(Claim::First(Instance {
                _lock: lock,
                #[cfg(unix)]
                listener,
            }))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            #[cfg(unix)]
            {
                use std::io::Write;
                if let Ok(mut s) =
                    std::os::unix::net::UnixStream::connect(profile_dir.join("instance.sock"))
                {
                    let _ = s.write_all(b"show\n");
                }
            }
            Ok(Claim::Running)
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

impl Instance {
    /// Calls `show` whenever a second start of this profile knocks.
    pub fn listen(&mut self, show: impl Fn() + Send + 'static) {
        #[cfg(unix)]
        if let Some(listener) = self.listener.take() {
            use std::io::Read;
            std::thread::spawn(move || {
                for mut stream in listener.incoming().flatten() {
                    let mut buf = [0u8; 16];
                    let n = stream.read(&mut buf).unwrap_or(0);
                    if buf[..n].starts_with(b"show") {
                        show();
                    }
                }
            });
        }
        // Elsewhere a second start only exits; bringing the window forward needs a named pipe.
        #[cfg(not(unix))]
        let _ = show;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_of_a_profile_is_refused_until_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = match claim(dir.path()).unwrap() {
            Claim::First(i) => i,
            Claim::Running => panic!("nobody held the profile"),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        first.listen(move || {
            let _ = tx.send(());
        });
        assert!(matches!(claim(dir.path()).unwrap(), Claim::Running));
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("the first instance was asked to show itself");
        drop(first);
        assert!(matches!(claim(dir.path()).unwrap(), Claim::First(_)));
    }

    #[test]
    fn profiles_do_not_block_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let _a = claim(&dir.path().join("a")).unwrap();
        assert!(matches!(
            claim(&dir.path().join("b")).unwrap(),
            Claim::First(_)
        ));
    }
}
