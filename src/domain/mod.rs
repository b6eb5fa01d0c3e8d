//! The domain core: plain data and decisions. No I/O, no tokio, no sqlx; `now` is always an
//! argument so every rule can be tested without a clock or a database.

pub mod dedup;
pub mod delivery;
pub mod event;
pub mod followup;
pub mod identity;
pub mod inbound;
pub mod inquiry;
pub mod lead;
pub mod plan;
pub mod records;
pub mod rep;
pub mod routing;
pub mod text;
pub mod working_hours;

pub use delivery::{Delivery, TelegramMessage};
pub use event::EventType;
pub use identity::{EmailAddress, Identity, IdentityError, IdentityKind, PhoneE164, Region};
pub use inbound::{Bookkeeping, Cursor, InboundMeta, Outcome, Reply};
pub use inquiry::{Attachment, Channel, Inquiry, InquiryBuilder, LeadField, Message, Source};
pub use lead::{LeadRuleError, Status};
pub use rep::NotifyVia;
