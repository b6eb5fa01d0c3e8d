//! `leadrouter replay`: a failed inbound item goes through intake again, from its raw payload.

use crate::base::from_ms;
use crate::channels::webform::{self, Parsed, form_config};
use crate::intake::{Intake, Outcome, RawItem};
use crate::store::InboundItem;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("inbound item {0} not found")]
    NotFound(String),
    #[error("inbound item {0} is {1}, not failed")]
    NotFailed(String, String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    StillFailing(String),
}

pub async fn replay(intake: &Intake, id: &str) -> Result<Outcome, ReplayError> {
    let item = intake
        .store
        .inbound_item(id)
        .await
        .map_err(|e| ReplayError::StillFailing(e.to_string()))?
        .ok_or_else(|| ReplayError::NotFound(id.to_owned()))?;
    if item.status != "failed" {
        return Err(ReplayError::NotFailed(item.id, item.status));
    }
    match item.channel.as_str() {
        "webform" => replay_webform(intake, &item).await,
        "email" => replay_email(intake, &item).await,
        "telegram" => replay_telegram(intake, &item).await,
        other => Err(ReplayError::Unsupported(format!(
            "{other} items are not replayed: that channel's sender was told it failed and sends again"
        ))),
    }
}

/// A Telegram update goes through the channel's handler again, as if it had just arrived.
async fn replay_telegram(intake: &Intake, item: &InboundItem) -> Result<Outcome, ReplayError> {
    let channel = crate::channels::telegram::TelegramChannel::new(intake.clone());
    let raw: serde_json::Value = serde_json::from_slice(&item.payload).unwrap_or_default();
    channel.handle(&raw, &item.payload).await.map_err(|e| ReplayError::StillFailing(e.to_string()))?;
    let after = intake.store.inbound_item(&item.id).await.map_err(|e| ReplayError::StillFailing(e.to_string()))?;
    match after {
        Some(a) if a.status == "failed" => Err(ReplayError::StillFailing(a.reason.unwrap_or_default())),
        // Handled now: the update's lead, if it concerned one.
        Some(a) => Ok(Outcome::Duplicate { lead_id: a.lead_id }),
        None => Err(ReplayError::NotFound(item.id.clone())),
    }
}

async fn replay_webform(intake: &Intake, item: &InboundItem) -> Result<Outcome, ReplayError> {
    let form_id = item.meta.form_id.as_deref().unwrap_or_default();
    let form = form_config(&intake.settings, form_id)
        .ok_or_else(|| ReplayError::Unsupported(format!("form `{form_id}` is no longer configured")))?;
    let received = webform::Received {
        form: &form,
        content_type: item.meta.content_type.as_deref(),
        body: bytes::Bytes::from(item.payload.clone()),
        referer: item.meta.referer.as_deref(),
        idempotency_key: None,
        external_id: Some(item.external_id.clone()),
        received_at: from_ms(item.received_at),
        dedup_window_ms: intake.settings.server.dedup_window.as_millis_i64(),
    };
    match webform::read(received).await.map_err(|e| ReplayError::StillFailing(e.to_string()))? {
        Parsed::Inquiry(inquiry) => intake
            .submit(&inquiry, RawItem::new(&item.meta, &item.payload))
            .await
            .map_err(|e| ReplayError::StillFailing(e.to_string())),
        Parsed::Honeypot | Parsed::TestPing => Err(ReplayError::Unsupported("the item is not an inquiry".into())),
    }
}

async fn replay_email(intake: &Intake, item: &InboundItem) -> Result<Outcome, ReplayError> {
    use crate::channels::email::{normalise, parse};
    let mailbox_id = item.meta.mailbox.as_deref().unwrap_or_default();
    let mailbox = intake
        .settings
        .imap
        .iter()
        .find(|m| m.id == mailbox_id)
        .ok_or_else(|| ReplayError::Unsupported(format!("mailbox `{mailbox_id}` is no longer configured")))?;
    let (own, region) = crate::channels::email::reading_context(&intake.settings, mailbox);
    let ctx = parse::MailboxContext { own_addresses: &own, default_region: region };
    match parse::parse(&item.payload, &ctx).map_err(|e| ReplayError::StillFailing(e.to_string()))? {
        parse::Verdict::Inquiry(mail) => {
            let mut inquiry = normalise::to_inquiry(mailbox_id, &mail, Some(item.received_at))
                .ok_or_else(|| ReplayError::Unsupported("the sender's address is not an address".into()))?;
            // The key it failed under, so that this item is the one that gets processed.
            inquiry.external_id = item.external_id.clone();
            intake
                .submit(&inquiry, RawItem::new(&item.meta, &item.payload))
                .await
                .map_err(|e| ReplayError::StillFailing(e.to_string()))
        }
        parse::Verdict::Skip { reason, .. } => {
            Err(ReplayError::Unsupported(format!("the message is not an inquiry ({})", reason.as_str())))
        }
    }
}
