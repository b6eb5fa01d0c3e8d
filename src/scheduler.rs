//! Time-driven work: leads waiting for an owner are offered again on a timer, which catches
//! reps who became eligible by the clock alone (working hours began, out of office ended) and
//! claim leads nobody took within the team's sla; leads their owner did not take on within
//! the sla move on; then the follow-up jobs (`followup.rs`). Changes made through the API
//! drain the queue at once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::intake::Intake;
use crate::store::StoreError;

/// Raw excerpts past `inbound.raw_retention` go, a batch per transaction.
async fn clear_old_payloads(intake: &Intake) -> Result<(), StoreError> {
    let Some(keep) = intake.settings.inbound.raw_retention else { return Ok(()) };
    let before = crate::base::ms(jiff::Timestamp::now()) - keep.as_millis_i64();
    loop {
        let cleared = intake.store.clear_old_payloads(before, 1000).await?;
        metrics::counter!("leadrouter_raw_payloads_cleared_total").increment(cleared);
        if cleared < 1000 {
            return Ok(());
        }
    }
}

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
        if let Err(e) = clear_old_payloads(&intake).await {
            tracing::warn!(error = %e, "scheduler: clearing old raw payloads failed");
        }
        on_tick();
    }
    tracing::info!("scheduler stopped");
}
