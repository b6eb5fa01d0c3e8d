//! Time-driven work, on the scheduler's tick: leads waiting for an owner are offered again,
//! which catches reps who became eligible by the clock alone (working hours began, out of
//! office ended) and claim leads nobody took within the team's sla; leads their owner did not
//! take on within the sla move on (`reassign`); then the follow-up jobs (`followup`) and the
//! retention of raw payloads. Changes made through the API drain the queue at once.

pub mod followup;
pub mod reassign;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::assignment::assign_waiting;
use crate::core::Core;
use crate::pipeline::Pipeline;
use crate::store::StoreError;

pub use followup::{FollowUp, SCHEDULER};

/// The scheduled jobs. Closing a lead nobody answers is a status change like a person's, so
/// the jobs make it through the pipeline.
#[derive(Clone)]
pub struct Jobs {
    pipeline: Pipeline,
}

impl Jobs {
    pub fn new(core: Core) -> Self {
        Jobs { pipeline: Pipeline::new(core) }
    }

    pub fn core(&self) -> &Core {
        &self.pipeline.core
    }

    /// Offers waiting leads to reps who became eligible. Returns how many got an owner.
    pub async fn assign_waiting(&self) -> Result<usize, StoreError> {
        assign_waiting(self.core()).await
    }

    /// Raw excerpts past `inbound.raw_retention` go, a batch per transaction.
    pub async fn clear_old_payloads(&self) -> Result<(), StoreError> {
        let Some(keep) = self.core().settings.inbound.raw_retention else { return Ok(()) };
        let before = crate::base::ms(jiff::Timestamp::now()) - keep.as_millis_i64();
        loop {
            let cleared = self.core().store.clear_old_payloads(before, 1000).await?;
            metrics::counter!("leadrouter_raw_payloads_cleared_total").increment(cleared);
            if cleared < 1000 {
                return Ok(());
            }
        }
    }
}

pub async fn run(jobs: Jobs, every: Duration, mut on_tick: impl FnMut() + Send, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if let Err(e) = jobs.assign_waiting().await {
            tracing::warn!(error = %e, "scheduler: assigning waiting leads failed");
        }
        if let Err(e) = jobs.reassign_unaccepted().await {
            tracing::warn!(error = %e, "scheduler: reassigning leads past their sla failed");
        }
        if let Err(e) = jobs.follow_up().await {
            tracing::warn!(error = %e, "scheduler: follow-up jobs failed");
        }
        if let Err(e) = jobs.clear_old_payloads().await {
            tracing::warn!(error = %e, "scheduler: clearing old raw payloads failed");
        }
        on_tick();
    }
    tracing::info!("scheduler stopped");
}
