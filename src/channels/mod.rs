//! Channel adapters: each turns what its channel delivers into an `Inquiry` and acknowledges
//! it only after intake committed.

pub mod email;
pub mod status;
pub mod telegram;
pub mod webform;
