//! How fast the queue drains: changes applied per second over the last minute, for the
//! `queue status` rate and ETA, `queue watch` and the metrics.
//!
//! One process-wide window (like the metrics recorder): [`record_applied`] is called for every
//! applied change, [`applied_last_minute`] reads it. Sixty one-second buckets, so the cost per
//! change is one lock and an add.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const WINDOW_SECONDS: u64 = 60;

/// `(second, count)` per slot; a slot whose second is older than the window counts 0.
static WINDOW: Mutex<[(u64, u64); WINDOW_SECONDS as usize]> =
    Mutex::new([(0, 0); WINDOW_SECONDS as usize]);

fn now_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Counts one applied change now.
pub fn record_applied() {
    record_at(now_second());
}

fn record_at(second: u64) {
    let mut window = crate::locks::lock(&WINDOW);
    let slot = &mut window[(second % WINDOW_SECONDS) as usize];
    if slot.0 != second {
        *slot = (second, 0);
    }
    slot.1 += 1;
}

/// Changes applied in the last minute.
pub fn applied_last_minute() -> u64 {
    applied_before(now_second())
}

fn applied_before(now: u64) -> u64 {
    let window = crate::locks::lock(&WINDOW);
    window
        .iter()
        .filter(|(second, _)| *second + WINDOW_SECONDS > now && *second <= now)
        .map(|(_, count)| count)
        .sum()
}

/// The expected time until `remaining` changes are applied at the last minute's pace; `None`
/// when nothing was applied in the last minute (no pace to go by).
pub fn eta(remaining: u64, applied_last_minute: u64) -> Option<std::time::Duration> {
    (applied_last_minute > 0).then(|| {
        std::time::Duration::from_secs_f64(remaining as f64 * 60.0 / applied_last_minute as f64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_counts_the_last_minute_only() {
        // Far in the future, so that other tests' changes in this process do not count.
        let base = 10_000_000_000;
        for _ in 0..30 {
            record_at(base);
        }
        record_at(base + 59);
        assert_eq!(applied_before(base + 59), 31);
        assert_eq!(applied_before(base + 60), 1);
        assert_eq!(applied_before(base + 200), 0);
        assert_eq!(eta(120, 60), Some(std::time::Duration::from_secs(120)));
        assert_eq!(eta(120, 0), None);
    }
}
