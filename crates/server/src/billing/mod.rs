//! Per-minute billing: what a consultation costs, when the money runs out, and who gets what.
//!
//! Nothing is held or charged while a consultation runs. Its end time follows from the
//! customer's balance (`ends_at = started_at + floor(balance / rate)` minutes), so a recharge
//! moves it without any write to the consultation. On completion one transaction changes the
//! state and writes the three ledger rows of [`bill`]: the customer's charge, the guide's
//! earning and the platform's commission, which add up to zero.
//!
//! - [`timer`]: the task that warns a minute before `ends_at` and ends the consultation at it.
//! - [`live`]: the server's side: timers per running consultation, wallet frames, operator notices.
//! - [`quiet`]: the task that warns and then ends a consultation nobody is active in.
//! - [`payments`]: the [`payments::PaymentProvider`] trait, the dev provider and the webhook one.

pub mod live;
pub mod payments;
pub mod quiet;
pub mod timer;

/// A minute, in ms. Each consultation keeps the minute it was sold by (always this one, but for
/// tests, which shorten it through `Config::billing_minute` so a "five-minute" chat ends in seconds).
pub const MINUTE_MS: i64 = 60_000;

/// When the balance runs out for a consultation started at `started_ms`: `None` when it is free.
pub fn ends_at_ms(
    started_ms: i64,
    balance: i64,
    rate_per_minute: i64,
    minute_ms: i64,
) -> Option<i64> {
    if rate_per_minute <= 0 {
        return None;
    }
    let minutes = balance.max(0) / rate_per_minute;
    Some(started_ms.saturating_add(minutes.saturating_mul(minute_ms.max(1))))
}

/// Started minutes in `duration_seconds`: `ceil(duration_seconds / 60)` for a real minute.
fn minutes_started(duration_seconds: i64, minute_ms: i64) -> i64 {
    let ms = duration_seconds.max(0).saturating_mul(1000);
    let minute = minute_ms.max(1);
    (ms + minute - 1) / minute
}

/// What a completed consultation costs the customer: every started minute at the rate,
/// `ceil(duration_seconds / 60) * rate_per_minute`, never more than the balance.
pub fn charge(duration_seconds: i64, rate_per_minute: i64, balance: i64, minute_ms: i64) -> i64 {
    if duration_seconds <= 0 || rate_per_minute <= 0 {
        return 0;
    }
    minutes_started(duration_seconds, minute_ms)
        .saturating_mul(rate_per_minute)
        .min(balance.max(0))
}

/// Splits a charge into the guide's earning (rounded down) and the platform's commission (the
/// rest), so the two always add up to the charge.
pub fn split(charge: i64, commission_percent: u32) -> (i64, i64) {
    let pct = i64::from(commission_percent.min(100));
    let earning = charge * (100 - pct) / 100;
    (earning, charge - earning)
}

/// The money side of one completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bill {
    /// When it counts as ended: now, or `ends_at` if that passed first.
    pub ended_ms: i64,
    /// Whole seconds from start to `ended_ms`.
    pub duration_seconds: i64,
    /// Taken from the customer.
    pub charge: i64,
    /// Given to the guide.
    pub earning: i64,
    /// Kept by the platform.
    pub commission: i64,
}

/// Prices a completion at `now_ms`. A consultation that never started costs nothing; one that
/// ran past `ends_at` (the server was down, or a completion raced the timer) is billed up to
/// `ends_at` only.
pub fn bill(
    started_ms: Option<i64>,
    now_ms: i64,
    rate_per_minute: i64,
    balance: i64,
    commission_percent: u32,
    minute_ms: i64,
) -> Bill {
    let Some(started) = started_ms else {
        return Bill {
            ended_ms: now_ms,
            duration_seconds: 0,
            charge: 0,
            earning: 0,
            commission: 0,
        };
    };
    let ended_ms = match ends_at_ms(started, balance, rate_per_minute, minute_ms) {
        Some(ends) => now_ms.min(ends),
        None => now_ms,
    }
    .max(started);
    let duration_seconds = (ended_ms - started) / 1000;
    let charge = charge(duration_seconds, rate_per_minute, balance, minute_ms);
    let (earning, commission) = split(charge, commission_percent);
    Bill {
        ended_ms,
        duration_seconds,
        charge,
        earning,
        commission,
    }
}

/// A short sentence of what was charged, for the system message that ends a consultation.
pub fn charged_text(bill: &Bill, currency: &str, minute_ms: i64) -> String {
    if bill.charge == 0 {
        return String::new();
    }
    let minutes = minutes_started(bill.duration_seconds, minute_ms);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!(" {minutes} {unit}, {} {currency} charged.", bill.charge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_started_minute_is_charged() {
        assert_eq!(charge(0, 20, 1000, MINUTE_MS), 0, "no time, no charge");
        assert_eq!(charge(1, 20, 1000, MINUTE_MS), 20, "one second is a minute");
        assert_eq!(
            charge(60, 20, 1000, MINUTE_MS),
            20,
            "sixty seconds are one minute"
        );
        assert_eq!(
            charge(61, 20, 1000, MINUTE_MS),
            40,
            "sixty-one seconds are two"
        );
        assert_eq!(charge(600, 20, 1000, MINUTE_MS), 200);
    }

    #[test]
    fn a_charge_never_exceeds_the_balance() {
        assert_eq!(charge(61, 20, 30, MINUTE_MS), 30);
        assert_eq!(charge(61, 20, 0, MINUTE_MS), 0);
        assert_eq!(
            charge(61, 20, -5, MINUTE_MS),
            0,
            "a negative balance is not charged further"
        );
    }

    #[test]
    fn a_shortened_minute_counts_the_same_way() {
        // Tests sell one-second minutes: 1 s is one, 2 s two, 0 s none.
        assert_eq!(charge(1, 20, 1000, 1000), 20);
        assert_eq!(charge(2, 20, 1000, 1000), 40);
        assert_eq!(ends_at_ms(0, 100, 20, 1000), Some(5000));
    }

    #[test]
    fn a_free_guide_costs_nothing_and_never_ends_the_chat() {
        assert_eq!(charge(3600, 0, 1000, MINUTE_MS), 0);
        assert_eq!(ends_at_ms(1_000, 1000, 0, MINUTE_MS), None);
    }

    #[test]
    fn the_guide_gets_the_rate_minus_commission_rounded_down() {
        assert_eq!(split(20, 30), (14, 6));
        assert_eq!(split(25, 30), (17, 8), "17.5 rounds down for the guide");
        assert_eq!(split(1, 30), (0, 1));
        assert_eq!(split(100, 0), (100, 0));
        assert_eq!(split(100, 100), (0, 100));
        assert_eq!(split(100, 250), (0, 100), "a commission over 100% is 100%");
        for c in 0..500 {
            let (e, k) = split(c, 30);
            assert_eq!(e + k, c, "the split of {c} adds up");
        }
    }

    #[test]
    fn ends_at_is_start_plus_whole_minutes_of_balance() {
        let start = 1_700_000_000_000;
        assert_eq!(
            ends_at_ms(start, 100, 20, MINUTE_MS),
            Some(start + 5 * MINUTE_MS)
        );
        assert_eq!(
            ends_at_ms(start, 119, 20, MINUTE_MS),
            Some(start + 5 * MINUTE_MS)
        );
        assert_eq!(
            ends_at_ms(start, 120, 20, MINUTE_MS),
            Some(start + 6 * MINUTE_MS)
        );
        assert_eq!(
            ends_at_ms(start, 19, 20, MINUTE_MS),
            Some(start),
            "less than a minute: ends at once"
        );
        assert_eq!(ends_at_ms(start, -3, 20, MINUTE_MS), Some(start));
    }

    #[test]
    fn a_bill_is_capped_at_ends_at() {
        let start = 1_000_000;
        // 100 at 20/min: 5 minutes. Completed 2 minutes late (the server was down).
        let b = bill(Some(start), start + 7 * MINUTE_MS, 20, 100, 30, MINUTE_MS);
        assert_eq!(b.ended_ms, start + 5 * MINUTE_MS);
        assert_eq!(b.duration_seconds, 300);
        assert_eq!((b.charge, b.earning, b.commission), (100, 70, 30));
        // Completed after 61 s.
        let b = bill(Some(start), start + 61_000, 20, 100, 30, MINUTE_MS);
        assert_eq!((b.duration_seconds, b.charge), (61, 40));
        assert_eq!((b.earning, b.commission), (28, 12));
        // Never started: nothing.
        let b = bill(None, start, 20, 100, 30, MINUTE_MS);
        assert_eq!((b.duration_seconds, b.charge), (0, 0));
    }

    #[test]
    fn the_system_line_says_what_was_charged() {
        let b = bill(Some(0), 61_000, 20, 100, 30, MINUTE_MS);
        assert_eq!(
            charged_text(&b, "INR", MINUTE_MS),
            " 2 minutes, 40 INR charged."
        );
        let free = bill(Some(0), 61_000, 0, 100, 30, MINUTE_MS);
        assert_eq!(charged_text(&free, "INR", MINUTE_MS), "");
    }
}
