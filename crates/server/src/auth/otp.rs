//! OTP codes: six digits, single use, hashed at rest; per phone one code per 30 s and five an hour.

use rand::Rng;

/// A fresh six-digit code.
pub fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// Whether a phone may get another code now, given when its recent codes were made
/// (milliseconds, ascending, at most an hour old). `Err` holds the seconds to wait.
pub fn allowance(
    recent_ms: &[i64],
    now_ms: i64,
    resend_after_ms: i64,
    per_hour: usize,
) -> Result<(), u64> {
    let hour = 3_600_000;
    let in_hour: Vec<i64> = recent_ms
        .iter()
        .copied()
        .filter(|t| *t > now_ms - hour)
        .collect();
    if let Some(last) = in_hour.last() {
        let wait = last + resend_after_ms - now_ms;
        if wait > 0 {
            return Err(ceil_secs(wait));
        }
    }
    if in_hour.len() >= per_hour {
        // The oldest code in the window must age out first.
        let oldest = in_hour[in_hour.len() - per_hour];
        return Err(ceil_secs(oldest + hour - now_ms));
    }
    Ok(())
}

fn ceil_secs(ms: i64) -> u64 {
    (ms.max(0) as u64).div_ceil(1000).max(1)
}

/// Serializes "may this phone get a code? then store it" per phone, so a burst of requests
/// cannot all pass the check before any of them is stored. Phones share 64 stripes.
pub async fn phone_lock(phone: &str) -> tokio::sync::MutexGuard<'static, ()> {
    use std::hash::{Hash, Hasher};
    static STRIPES: std::sync::OnceLock<Vec<tokio::sync::Mutex<()>>> = std::sync::OnceLock::new();
    let stripes = STRIPES.get_or_init(|| (0..64).map(|_| tokio::sync::Mutex::new(())).collect());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    phone.hash(&mut h);
    stripes[(h.finish() % stripes.len() as u64) as usize]
        .lock()
        .await
}

/// Normalizes `+91` and `98765 43210` into `+919876543210`, or says what is wrong.
pub fn full_phone(area_code: &str, number: &str) -> Result<String, &'static str> {
    let area = area_code.trim();
    let digits: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let area_digits = area.strip_prefix('+').unwrap_or(area);
    if area_digits.is_empty()
        || area_digits.len() > 4
        || !area_digits.chars().all(|c| c.is_ascii_digit())
    {
        return Err("area_code must look like +91");
    }
    if digits.len() < 4 || digits.len() > 14 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err("phone_number must be 4 to 14 digits");
    }
    Ok(format!("+{area_digits}{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let c = new_code();
            assert_eq!(c.len(), 6);
            assert!(c.chars().all(|d| d.is_ascii_digit()));
        }
    }

    #[test]
    fn a_second_code_within_30_seconds_waits() {
        assert_eq!(allowance(&[], 1_000_000, 30_000, 5), Ok(()));
        assert_eq!(allowance(&[990_000], 1_000_000, 30_000, 5), Err(20));
        assert_eq!(allowance(&[970_000], 1_000_000, 30_000, 5), Ok(()));
    }

    #[test]
    fn the_sixth_code_in_an_hour_waits_for_the_oldest_to_age_out() {
        let now = 10_000_000;
        let times: Vec<i64> = (0..5).map(|i| now - 3_000_000 + i * 600_000).collect();
        // Oldest at now-3_000_000 ages out at now+600_000.
        assert_eq!(allowance(&times, now, 30_000, 5), Err(600));
        assert_eq!(allowance(&times[1..], now, 30_000, 5), Ok(()));
    }

    #[test]
    fn phones_are_normalized_and_checked() {
        assert_eq!(
            full_phone("+91", "98765 43210").as_deref(),
            Ok("+919876543210")
        );
        assert_eq!(
            full_phone("91", "9876543210").as_deref(),
            Ok("+919876543210")
        );
        assert!(full_phone("+91", "98x").is_err());
        assert!(full_phone("", "9876543210").is_err());
        assert!(full_phone("+12345", "9876543210").is_err());
    }
}
