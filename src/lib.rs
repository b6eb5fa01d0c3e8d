//! leadrouter: omnichannel lead intake and routing.
//!
//! Data flows one way: channels (`channels`) turn what they receive into an `Inquiry`;
//! `intake` commits it as a lead with an owner in one transaction; `outbox` delivers the
//! side effects; `http` serves the API. `domain` holds the rules and does no I/O; `store` is
//! the only place that writes SQL.

pub mod app;
pub mod base;
pub mod cards;
pub mod channels;
pub mod console;
pub mod domain;
pub mod events;
pub mod followup;
pub mod http;
pub mod inbox;
pub mod intake;
pub mod merges;
pub mod notify;
pub mod outbox;
pub mod pipeline;
pub mod reassign;
pub mod replay;
pub mod scheduler;
pub mod settings;
pub mod store;
pub mod telemetry;
