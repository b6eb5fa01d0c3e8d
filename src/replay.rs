//! `leadrouter replay`: a failed inbound item goes through its channel's decoder and the inbox
//! again, from its raw payload, exactly as it would have when it arrived.

use crate::base::from_ms;
use crate::channels::email::{decode as decode_email, parse::MailboxContext, reading_context};
use crate::channels::telegram::decode as decode_telegram;
use crate::channels::webform::{self, Parsed, form_config};
use crate::channels::{Decoded, Inlet, Item};
use crate::domain::Channel;
use crate::inbox::Inbox;
use crate::intake::Intake;
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

/// Replays item `id`; the lead it went to, if any.
pub async fn replay(intake: &Intake, id: &str) -> Result<Option<String>, ReplayError> {
    let still = |e: &dyn std::fmt::Display| ReplayError::StillFailing(e.to_string());
    let item = intake
        .core
        .store
        .inbound_item(id)
        .await
        .map_err(|e| still(&e))?
        .ok_or_else(|| ReplayError::NotFound(id.to_owned()))?;
    if item.status != "failed" {
        return Err(ReplayError::NotFailed(item.id, item.status));
    }
    let mut decoded = decode(intake, &item).await?;
    // The key it failed under, so that this item is the one that gets processed.
    decoded.key = item.external_id.clone();
    if let Decoded::Inquiry { inquiry, .. } = &mut decoded.decoded {
        inquiry.external_id = item.external_id.clone();
    }
    let lead = Inbox::new(intake.clone()).take(decoded).await.map_err(|e| still(&e))?;
    match intake.core.store.inbound_item(&item.id).await.map_err(|e| still(&e))? {
        Some(after) if after.status == "failed" => Err(ReplayError::StillFailing(after.reason.unwrap_or_default())),
        Some(after) => Ok(lead.or(after.lead_id)),
        None => Err(ReplayError::NotFound(item.id.clone())),
    }
}

/// The item as its channel decodes it.
async fn decode(intake: &Intake, item: &InboundItem) -> Result<Item, ReplayError> {
    let unsupported = |why: String| Err(ReplayError::Unsupported(why));
    let channel = item.channel.parse::<Channel>().map_err(ReplayError::Unsupported)?;
    match channel {
        Channel::Telegram => Ok(decode_telegram(item.payload.clone(), None)),
        Channel::Email => {
            let mailbox_id = item.meta.mailbox.as_deref().unwrap_or_default();
            let Some(mailbox) = intake.core.settings.imap.iter().find(|m| m.id == mailbox_id) else {
                return unsupported(format!("mailbox `{mailbox_id}` is no longer configured"));
            };
            let (own, region) = reading_context(&intake.core.settings, mailbox);
            let ctx = MailboxContext { own_addresses: &own, default_region: region };
            Ok(decode_email(mailbox_id, &item.payload, &ctx, Some(item.received_at)))
        }
        Channel::Webform => {
            let form_id = item.meta.form_id.as_deref().unwrap_or_default();
            let Some(form) = form_config(&intake.core.settings, form_id) else {
                return unsupported(format!("form `{form_id}` is no longer configured"));
            };
            let received = webform::Received {
                form: &form,
                content_type: item.meta.content_type.as_deref(),
                body: bytes::Bytes::from(item.payload.clone()),
                referer: item.meta.referer.as_deref(),
                idempotency_key: None,
                external_id: Some(item.external_id.clone()),
                received_at: from_ms(item.received_at),
                dedup_window_ms: intake.core.settings.server.dedup_window.as_millis_i64(),
            };
            match webform::read(received).await.map_err(|e| ReplayError::StillFailing(e.to_string()))? {
                Parsed::Inquiry(inquiry) => Ok(Item {
                    channel,
                    key: inquiry.external_id.clone(),
                    meta: item.meta.clone(),
                    payload: item.payload.clone(),
                    decoded: Decoded::Inquiry { inquiry, also: Vec::new() },
                }),
                Parsed::Honeypot | Parsed::TestPing => unsupported("the item is not an inquiry".into()),
            }
        }
        other => unsupported(format!(
            "{other} items are not replayed: that channel's sender was told it failed and sends again"
        )),
    }
}
