//! Waiting between attempts, shared by the channels' long-running workers.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Exponential backoff from 1 s up to `max`, with jitter in its upper half so that workers
/// that failed together do not retry together.
pub fn backoff(failures: u32, max: Duration) -> Duration {
    let max = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    let base = 1000u64.saturating_mul(2u64.saturating_pow(failures.min(20))).min(max).max(1);
    Duration::from_millis(base / 2 + rand::random_range(0..=base / 2))
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
    fn backoff_doubles_from_a_second_up_to_the_cap() {
        for failures in 0..30 {
            let full = (1000u64 << failures.min(20)).min(120_000);
            let d = backoff(failures, Duration::from_secs(120)).as_millis() as u64;
            assert!((full / 2..=full).contains(&d), "{failures}: {d} ms");
        }
    }
}
