//! Waiting between attempts, one way for everything: exponential backoff with jitter (the
//! outbox's deliveries, the channels' reconnects, lost races in the database), retrying a unit
//! of work that lost a race, and sleeping unless the worker is being stopped.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// `base · 2^attempt`, at most `cap`, of which the upper half is random ("equal jitter"): waits
/// grow, and many waiters that failed together do not come back together.
pub fn backoff(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let full = millis(base).saturating_mul(2u64.saturating_pow(attempt.min(40))).min(millis(cap)).max(1);
    Duration::from_millis(full / 2 + rand::random_range(0..=full / 2))
}

/// The pause after a lost race: contention clears in milliseconds (1–2 ms doubling up to
/// 64–128 ms).
pub fn race_pause(attempt: u32) -> Duration {
    backoff(Duration::from_millis(2), Duration::from_millis(128), attempt)
}

/// An error that means "a concurrent writer got there first: run the whole unit again".
pub trait Conflict {
    fn is_conflict(&self) -> bool;
}

/// Attempts a unit of work gets while it keeps losing races.
pub const RACE_ATTEMPTS: u32 = 8;

/// Runs `job` again while it loses races, pausing with jitter between attempts; the last
/// attempt's result is returned.
pub async fn on_conflict<T, E, F, Fut>(mut job: F) -> Result<T, E>
where
    E: Conflict,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match job().await {
            Err(e) if e.is_conflict() && attempt + 1 < RACE_ATTEMPTS => {
                tokio::time::sleep(race_pause(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Sleeps for `d`, or less when the worker is being stopped.
pub async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_the_upper_half_random() {
        for attempt in 0..30 {
            let full = (1000u64 << attempt.min(20)).min(120_000);
            let d = backoff(Duration::from_secs(1), Duration::from_secs(120), attempt).as_millis() as u64;
            assert!((full / 2..=full).contains(&d), "{attempt}: {d} ms");
        }
        for attempt in 0..12 {
            let d = race_pause(attempt).as_millis() as u64;
            let low = 1u64 << attempt.min(6);
            assert!((low..=2 * low).contains(&d), "race pause {attempt}: {d} ms");
        }
    }

    #[derive(Debug, PartialEq)]
    struct Lost;
    impl Conflict for Lost {
        fn is_conflict(&self) -> bool {
            true
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_unit_that_keeps_losing_gets_its_attempts_then_the_error() {
        let mut tries = 0;
        let r: Result<(), Lost> = on_conflict(|| {
            tries += 1;
            async { Err(Lost) }
        })
        .await;
        assert_eq!((r, tries), (Err(Lost), RACE_ATTEMPTS));
        let mut tries = 0;
        let r: Result<u32, Lost> = on_conflict(|| {
            tries += 1;
            let n = tries;
            async move { if n < 3 { Err(Lost) } else { Ok(n) } }
        })
        .await;
        assert_eq!(r, Ok(3));
    }
}
