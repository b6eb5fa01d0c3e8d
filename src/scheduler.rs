//! Time-driven work: leads waiting for an owner are offered again on a timer, which catches
//! reps who became eligible by the clock alone (working hours began, out of office ended) and
//! claim leads nobody took within the team's sla; leads their owner did not take on within
//! the sla move on; then the follow-up jobs (`followup.rs`). Changes made through the API
//! drain the queue at once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::intake::Intake;

pub async fn run(intake: Intake, every: Duration, mut on_tick: impl FnMut() + Send, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if let Err(e) = intake.assign_waiting().await {
            tracing::warn!(error = %e, "scheduler: assigning waiting leads failed");
        }
        if let Err(e) = intake.reassign_unaccepted().await {
            tracing::warn!(error = %e, "scheduler: reassigning leads past their sla failed");
        }
        if let Err(e) = intake.follow_up().await {
            tracing::warn!(error = %e, "scheduler: follow-up jobs failed");
        }
        on_tick();
    }
    tracing::info!("scheduler stopped");
}
