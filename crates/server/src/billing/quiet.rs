//! The silence timer of one running consultation: when nobody has sent, read or typed for
//! `idle` both sides are warned, and after a further `grace` the server ends it, charged up to
//! the last activity.
//!
//! Like the balance timer it keeps no state of its own: it wakes at the next deadline, asks for
//! the last activity again, and goes back to sleep if someone did something meanwhile. The end
//! is refused by the store unless the consultation really was quiet that long.

use async_trait::async_trait;
use std::time::Duration;

/// What the timer needs from the world.
#[async_trait]
pub trait Watched: Send + Sync {
    /// The last activity (ms), or `None` once the consultation no longer runs.
    async fn last_active(&self) -> Option<i64>;
    /// Tells both sides it ends at `ends_at` (ms) unless someone does something.
    async fn warn(&self, ends_at: i64);
    /// Ends it for silence. `false` if refused (someone was active after all).
    async fn end(&self) -> bool;
}

/// How long to wait after a refused end before looking again.
const RETRY: Duration = Duration::from_millis(500);

/// Runs until the consultation ends.
pub async fn run(w: impl Watched, idle_ms: i64, grace_ms: i64, now_ms: impl Fn() -> i64 + Send) {
    let mut warned_for: Option<i64> = None;
    loop {
        let Some(last) = w.last_active().await else {
            return;
        };
        let (warn_at, end_at) = (last + idle_ms, last + idle_ms + grace_ms);
        let now = now_ms();
        let wait = if now >= end_at {
            if w.end().await {
                return;
            }
            RETRY
        } else if now >= warn_at && warned_for != Some(last) {
            w.warn(end_at).await;
            warned_for = Some(last);
            continue;
        } else {
            let next = if now >= warn_at { end_at } else { warn_at };
            Duration::from_millis((next - now).max(1) as u64)
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;

    const IDLE: i64 = 10 * 60_000;
    const GRACE: i64 = 2 * 60_000;

    /// Last activity, warnings given (when, for which end), when it ended.
    type FakeState = (Option<i64>, Vec<(i64, i64)>, Option<i64>);

    /// A consultation on a paused clock whose activity a test can move.
    #[derive(Clone)]
    struct Fake {
        start: Instant,
        st: Arc<Mutex<FakeState>>,
    }

    impl Fake {
        fn new() -> Self {
            Self {
                start: Instant::now(),
                st: Arc::new(Mutex::new((Some(0), Vec::new(), None))),
            }
        }
        fn now(&self) -> i64 {
            self.start.elapsed().as_millis() as i64
        }
        fn clock(&self) -> impl Fn() -> i64 + Send {
            let me = self.clone();
            move || me.now()
        }
        fn act(&self) {
            let now = self.now();
            self.st.lock().expect("state").0 = Some(now);
        }
    }

    #[async_trait]
    impl Watched for Fake {
        async fn last_active(&self) -> Option<i64> {
            let st = self.st.lock().expect("state");
            if st.2.is_some() {
                None
            } else {
                st.0
            }
        }
        async fn warn(&self, ends_at: i64) {
            let now = self.now();
            self.st.lock().expect("state").1.push((now, ends_at));
        }
        async fn end(&self) -> bool {
            let now = self.now();
            let mut st = self.st.lock().expect("state");
            match st.0 {
                Some(last) if now >= last + IDLE + GRACE => {
                    st.2 = Some(now);
                    true
                }
                _ => false,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn silence_warns_after_ten_minutes_and_ends_two_later() {
        let fake = Fake::new();
        run(fake.clone(), IDLE, GRACE, fake.clock()).await;
        let st = fake.st.lock().expect("state");
        assert_eq!(st.1, vec![(IDLE, IDLE + GRACE)]);
        assert_eq!(st.2, Some(IDLE + GRACE));
    }

    #[tokio::test(start_paused = true)]
    async fn activity_after_the_warning_keeps_the_chat_open() {
        let fake = Fake::new();
        let task = tokio::spawn(run(fake.clone(), IDLE, GRACE, fake.clock()));
        // A message a minute after the warning: the clock starts again from it.
        tokio::time::sleep(Duration::from_millis((IDLE + 60_000) as u64)).await;
        fake.act();
        task.await.expect("timer");
        let st = fake.st.lock().expect("state");
        let again = IDLE + 60_000;
        assert_eq!(
            st.1,
            vec![(IDLE, IDLE + GRACE), (again + IDLE, again + IDLE + GRACE)]
        );
        assert_eq!(st.2, Some(again + IDLE + GRACE));
    }

    #[tokio::test(start_paused = true)]
    async fn steady_activity_never_warns() {
        let fake = Fake::new();
        let task = tokio::spawn(run(fake.clone(), IDLE, GRACE, fake.clock()));
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_secs(5 * 60)).await;
            fake.act();
        }
        assert!(fake.st.lock().expect("state").1.is_empty());
        fake.st.lock().expect("state").2 = Some(0); // ended by a party
        task.await.expect("timer stops once it ended");
    }
}
