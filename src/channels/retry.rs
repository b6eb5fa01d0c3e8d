//! Waiting between attempts, shared by the channels' long-running workers.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Exponential backoff from 1 s up to `max`, with jitter.
pub fn backoff(failures: u32, max: Duration) -> Duration {
    crate::outbox::jittered_backoff(Duration::from_secs(1), max, failures)
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
