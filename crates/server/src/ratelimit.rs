//! Token buckets keyed by whatever needs limiting (sender and consultation for messages).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
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
        Self {
            burst: burst as f64,
            per_sec: per_minute as f64 / 60.0,
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
}
