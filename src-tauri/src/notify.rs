//! Desktop notifications for what a person must not miss while the window is hidden or in the
//! background: a message, a request (for a guide: urgent, stays until dismissed), accepted, ended.
//! Clicking one brings the window forward on that chat where the platform reports clicks.

#[cfg(desktop)]
use std::sync::atomic::{AtomicUsize, Ordering};
use tara_core::NoticeKind;
use tauri::AppHandle;
#[cfg(desktop)]
use tauri::Manager;

/// Notifications whose click is still awaited (each holds a thread until it closes; notification
/// trays may keep them for long). Past this many, new ones show without waiting for a click.
#[cfg(desktop)]
const MAX_AWAITING: usize = 16;
#[cfg(desktop)]
static AWAITING: AtomicUsize = AtomicUsize::new(0);

/// Linux notification servers may read the body as markup: other people's text must stay text.
pub fn plain(s: &str) -> String {
    if cfg!(all(unix, not(target_os = "macos"))) {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    } else {
        s.to_owned()
    }
}

/// Shows a notification for `kind`; `open` runs if the person clicks it.
#[cfg(desktop)]
pub fn show(
    app: &AppHandle,
    kind: NoticeKind,
    title: String,
    body: String,
    open: impl FnOnce() + Send + 'static,
) {
    if kind == NoticeKind::Request {
        if let Some(w) = app.get_webview_window(crate::MAIN) {
            let _ = w.request_user_attention(Some(tauri::UserAttentionType::Critical));
        }
    }
    // Talking to the notification service blocks (D-Bus on Linux), and on Linux waiting for
    // the click blocks until the notification closes: its own thread.
    std::thread::spawn(move || {
        let mut n = notify_rust::Notification::new();
        n.appname("Tara")
            .summary(&plain(&title))
            .body(&plain(&body));
        #[cfg(all(unix, not(target_os = "macos")))]
        {
            n.action("default", "Open")
                .hint(notify_rust::Hint::Category(
                    match kind {
                        NoticeKind::Message => "im.received",
                        _ => "im",
                    }
                    .into(),
                ));
            if kind == NoticeKind::Request {
                n.urgency(notify_rust::Urgency::Critical)
                    .timeout(notify_rust::Timeout::Never);
            }
        }
        match n.show() {
            #[cfg(all(unix, not(target_os = "macos")))]
            Ok(handle) => {
                if AWAITING.fetch_add(1, Ordering::Relaxed) < MAX_AWAITING {
                    handle.wait_for_action(|action| {
                        if action == "default" {
                            open();
                        }
                    });
                }
                AWAITING.fetch_sub(1, Ordering::Relaxed);
            }
            #[cfg(not(all(unix, not(target_os = "macos"))))]
            Ok(_) => drop(open),
            Err(e) => tracing::debug!(error = %e, "no notification service"),
        }
    });
}

/// Phones: nothing here. With the app in front the UI shows what came; in the background the
/// OS may suspend the app at any moment, so the server's push (FCM, APNs) is what reaches the
/// person (`tara-server --fcm-service-account`, `--apns-key`). notify-rust is not even a
/// dependency of mobile builds (see Cargo.toml).
#[cfg(mobile)]
pub fn show(
    _app: &AppHandle,
    _kind: NoticeKind,
    _title: String,
    _body: String,
    _open: impl FnOnce() + Send + 'static,
) {
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(unix, not(target_os = "macos")))]
    fn message_text_is_not_read_as_markup() {
        assert_eq!(
            super::plain("<a href=x>win</a> & more"),
            "&lt;a href=x&gt;win&lt;/a&gt; &amp; more"
        );
    }
}
