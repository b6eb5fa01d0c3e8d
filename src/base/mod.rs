//! The bottom of the house, below everything but `domain`: the clock and id helpers every
//! layer uses, and waiting between attempts (`retry`). No I/O besides sleeping.

pub mod retry;

use jiff::Timestamp;
use sha2::{Digest, Sha256};

/// Timestamps are stored and compared as milliseconds since the Unix epoch (UTC).
pub fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub fn from_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Time-ordered opaque id (UUIDv7): index-friendly and sortable for cursors.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// sha256 (hex) of a secret: what is stored of tokens, session ids and link codes.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
