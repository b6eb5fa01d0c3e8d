//! leadrouter: omnichannel lead intake and routing.
//!
//! Data flows one way: channels (`channels`) decode what they receive into an `Item` and hand
//! it to the `inbox`; `intake` commits an inquiry as a lead with an owner in one unit of work;
//! people change leads through the `pipeline` (API, dashboard, the Telegram `console`);
//! `jobs` run on the clock; the `outbox` delivers side effects through `notify`. `domain`
//! holds the rules and does no I/O; `store` is the only place that writes SQL. The rooms and
//! what each may import: ARCHITECTURE.md (checked by `tests/api/architecture.rs`).

pub mod app;
pub mod assignment;
pub mod base;
pub mod cards;
pub mod channels;
pub mod console;
pub mod core;
pub mod domain;
pub mod events;
pub mod http;
pub mod inbox;
pub mod intake;
pub mod jobs;
pub mod notify;
pub mod outbox;
pub mod pipeline;
pub mod replay;
pub mod settings;
pub mod store;
pub mod telemetry;
