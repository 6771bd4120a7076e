//! Token buckets keyed by whatever needs limiting (sender and consultation for messages, the
//! peer's IP for login codes and logins), and [`Slots`]: a cap on how many of something one key
//! holds at once (realtime connections per user and per IP).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// A bucket of `burst` tokens refilled at `per_minute`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Many buckets with one rule.
pub struct RateLimiter<K> {
    burst: f64,
    per_sec: f64,
    // Held only to read and update one bucket; never across an await.
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `burst` at once, refilling at `per_minute`.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self::refilling(burst, per_minute as f64 / 60.0)
    }

    /// `burst` at once, refilling at `per_hour`.
    pub fn per_hour(burst: u32, per_hour: u32) -> Self {
        Self::refilling(burst, per_hour as f64 / 3600.0)
    }

    fn refilling(burst: u32, per_sec: f64) -> Self {
        Self {
            burst: burst as f64,
            per_sec,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`; `Err` holds the seconds until one is free.
    pub fn take(&self, key: &K) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut map) = self.buckets.lock() else {
            return Ok(());
        };
        if map.len() > 100_000 {
            // Full buckets carry no information; drop them to bound memory.
            let (burst, per_sec) = (self.burst, self.per_sec);
            map.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < burst);
        }
        let b = map.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else if self.per_sec <= 0.0 {
            Err(60)
        } else {
            Err(((1.0 - b.tokens) / self.per_sec).ceil() as u64)
        }
    }
}

/// At most `max` held at once per key; a held slot is given back when its [`Slot`] drops.
pub struct Slots<K: Hash + Eq> {
    max: usize,
    held: Arc<Mutex<HashMap<K, usize>>>,
}

/// One slot of a [`Slots`], given back on drop.
pub struct Slot<K: Hash + Eq> {
    key: K,
    held: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Hash + Eq + Clone> Slots<K> {
    /// At most `max` per key.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for `key`, or `None` when it already holds `max`.
    pub fn take(&self, key: &K) -> Option<Slot<K>> {
        let mut map = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.clone()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            key: key.clone(),
            held: self.held.clone(),
        })
    }

    /// How many `key` holds now.
    pub fn held(&self, key: &K) -> usize {
        let map = self.held.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).copied().unwrap_or(0)
    }
}

impl<K: Hash + Eq> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut map = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // Keys holding nothing are dropped, so the map is as big as what is held.
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn ten_at_once_then_one_every_two_seconds() {
        let limiter = RateLimiter::new(10, 30);
        for i in 0..10 {
            assert_eq!(limiter.take(&"k"), Ok(()), "message {i} of the burst");
        }
        assert_eq!(limiter.take(&"k"), Err(2));
        assert_eq!(limiter.take(&"other"), Ok(()), "buckets are per key");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(limiter.take(&"k"), Ok(()));
        assert!(limiter.take(&"k").is_err());
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..10 {
            assert_eq!(limiter.take(&"k"), Ok(()));
        }
        assert!(
            limiter.take(&"k").is_err(),
            "the bucket never holds more than the burst"
        );
    }

    #[test]
    fn slots_cap_what_one_key_holds_and_come_back_on_drop() {
        let slots = Slots::new(2);
        let a = slots.take(&"k").expect("first");
        let _b = slots.take(&"k").expect("second");
        assert!(slots.take(&"k").is_none(), "a third is refused");
        assert!(
            slots.take(&"other").is_some(),
            "other keys are not affected"
        );
        drop(a);
        assert!(slots.take(&"k").is_some(), "a dropped slot comes back");
        assert_eq!(slots.held(&"other"), 0, "an empty key holds nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn an_hourly_bucket_refills_one_token_per_its_share_of_the_hour() {
        let limiter = RateLimiter::per_hour(2, 30);
        assert_eq!(limiter.take(&"ip"), Ok(()));
        assert_eq!(limiter.take(&"ip"), Ok(()));
        assert_eq!(limiter.take(&"ip"), Err(120), "one token every 2 minutes");
        tokio::time::advance(Duration::from_secs(120)).await;
        assert_eq!(limiter.take(&"ip"), Ok(()));
    }
}
