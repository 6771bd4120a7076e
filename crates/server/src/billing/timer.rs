//! The balance timer of one running consultation: a warning one minute before `ends_at`, the
//! end at `ends_at`.
//!
//! The timer holds no money state of its own. Every time it wakes (at the warning, at the end,
//! or when told the balance changed) it asks for the consultation's current `ends_at`, so a
//! recharge that moves it, a completion by a party, or a restart can never make it end a chat
//! early or twice: the end itself is a state-conditional write in the store, refused unless the
//! consultation is still running and its `ends_at` has passed.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// What the timer needs from the world.
#[async_trait]
pub trait Billed: Send + Sync {
    /// The consultation's `ends_at` now (ms), or `None` once it no longer runs on a balance.
    async fn ends_at(&self) -> Option<i64>;
    /// Tells both sides the money runs out at `ends_at`.
    async fn warn(&self, ends_at: i64);
    /// Ends the consultation because the balance ran out. `false` if that was refused (ended
    /// meanwhile, or `ends_at` moved): the timer then looks again.
    async fn end(&self) -> bool;
}

/// How long to wait after a failed end before looking again.
const RETRY: Duration = Duration::from_millis(500);

/// Runs until the consultation ends, warning `lead_ms` (a minute) before the end. `now_ms` is
/// the wall clock; `changed` wakes the timer early when the balance moved.
pub async fn run(
    billed: impl Billed,
    changed: Arc<Notify>,
    lead_ms: i64,
    now_ms: impl Fn() -> i64 + Send,
) {
    let mut warned_for: Option<i64> = None;
    loop {
        let Some(ends) = billed.ends_at().await else {
            return;
        };
        let now = now_ms();
        let wait = if now >= ends {
            if billed.end().await {
                return;
            }
            RETRY
        } else if now >= ends - lead_ms && warned_for != Some(ends) {
            billed.warn(ends).await;
            warned_for = Some(ends);
            continue;
        } else {
            let next = if now >= ends - lead_ms {
                ends
            } else {
                ends - lead_ms
            };
            Duration::from_millis((next - now).max(1) as u64)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = changed.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::MINUTE_MS;
    use std::sync::Mutex;
    use tokio::time::Instant;

    /// A consultation on a paused clock: `ends_at` can be moved, ends and warnings are recorded
    /// with the (paused) time they happened at.
    #[derive(Clone)]
    struct Fake {
        start: Instant,
        inner: Arc<Mutex<FakeState>>,
    }

    struct FakeState {
        ends_at: Option<i64>,
        warnings: Vec<(i64, i64)>,
        ended_at: Option<i64>,
    }

    impl Fake {
        fn new(ends_at: i64) -> Self {
            Self {
                start: Instant::now(),
                inner: Arc::new(Mutex::new(FakeState {
                    ends_at: Some(ends_at),
                    warnings: Vec::new(),
                    ended_at: None,
                })),
            }
        }
        fn now(&self) -> i64 {
            self.start.elapsed().as_millis() as i64
        }
        fn clock(&self) -> impl Fn() -> i64 + Send {
            let me = self.clone();
            move || me.now()
        }
        fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
            self.inner.lock().expect("fake state")
        }
    }

    #[async_trait]
    impl Billed for Fake {
        async fn ends_at(&self) -> Option<i64> {
            let st = self.state();
            st.ended_at.is_none().then_some(st.ends_at).flatten()
        }
        async fn warn(&self, ends_at: i64) {
            let now = self.now();
            self.state().warnings.push((now, ends_at));
        }
        async fn end(&self) -> bool {
            let now = self.now();
            let mut st = self.state();
            match st.ends_at {
                Some(e) if now >= e && st.ended_at.is_none() => {
                    st.ended_at = Some(now);
                    true
                }
                _ => false,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn it_warns_a_minute_before_and_ends_on_time() {
        let fake = Fake::new(5 * MINUTE_MS);
        run(
            fake.clone(),
            Arc::new(Notify::new()),
            MINUTE_MS,
            fake.clock(),
        )
        .await;
        let st = fake.state();
        assert_eq!(st.warnings, vec![(4 * MINUTE_MS, 5 * MINUTE_MS)]);
        assert_eq!(st.ended_at, Some(5 * MINUTE_MS));
    }

    #[tokio::test(start_paused = true)]
    async fn a_recharge_moves_the_end_and_warns_again() {
        let fake = Fake::new(5 * MINUTE_MS);
        let changed = Arc::new(Notify::new());
        let task = tokio::spawn(run(fake.clone(), changed.clone(), MINUTE_MS, fake.clock()));
        // Half a minute after the warning, the customer recharges three more minutes.
        tokio::time::sleep(Duration::from_millis((4 * MINUTE_MS + 30_000) as u64)).await;
        fake.state().ends_at = Some(8 * MINUTE_MS);
        changed.notify_one();
        task.await.expect("timer");
        let st = fake.state();
        assert_eq!(
            st.warnings,
            vec![
                (4 * MINUTE_MS, 5 * MINUTE_MS),
                (7 * MINUTE_MS, 8 * MINUTE_MS)
            ]
        );
        assert_eq!(st.ended_at, Some(8 * MINUTE_MS), "not at the old end");
    }

    #[tokio::test(start_paused = true)]
    async fn a_consultation_ended_by_a_party_stops_the_timer() {
        let fake = Fake::new(5 * MINUTE_MS);
        let changed = Arc::new(Notify::new());
        let task = tokio::spawn(run(fake.clone(), changed.clone(), MINUTE_MS, fake.clock()));
        tokio::time::sleep(Duration::from_secs(90)).await;
        fake.state().ended_at = Some(fake.now()); // the customer ended it
        task.await.expect("timer");
        assert!(fake.state().warnings.is_empty(), "no warning after the end");
        assert_eq!(fake.state().ended_at, Some(90_000));
    }

    #[tokio::test(start_paused = true)]
    async fn an_end_time_already_past_ends_at_once() {
        // The server was down across ends_at: at start the timer ends it straight away.
        let fake = Fake::new(0);
        tokio::time::sleep(Duration::from_secs(3)).await;
        run(
            fake.clone(),
            Arc::new(Notify::new()),
            MINUTE_MS,
            fake.clock(),
        )
        .await;
        assert_eq!(fake.state().ended_at, Some(3_000));
        assert!(fake.state().warnings.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn less_than_a_minute_left_warns_at_once() {
        let fake = Fake::new(40_000);
        run(
            fake.clone(),
            Arc::new(Notify::new()),
            MINUTE_MS,
            fake.clock(),
        )
        .await;
        let st = fake.state();
        assert_eq!(st.warnings, vec![(0, 40_000)]);
        assert_eq!(st.ended_at, Some(40_000));
    }
}
