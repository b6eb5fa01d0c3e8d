//! What each channel worker is doing, for `/readyz` and the metrics. Observability only:
//! nothing decides on it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Starting,
    Connected,
    /// Another instance holds this worker's lock (PostgreSQL): it stands by.
    Standby,
    /// Retrying after an error.
    Error,
    /// The server refused the credentials: retried slowly.
    AuthFailed,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    pub state: State,
    pub error: Option<String>,
    /// RFC 3339 time of the last change.
    pub since: String,
}

#[derive(Clone, Default, Debug)]
pub struct ChannelStatus(Arc<Mutex<BTreeMap<String, Health>>>);

impl ChannelStatus {
    /// Records `worker`'s state (`worker` like `imap:sales-inbox`).
    pub fn set(&self, worker: &str, state: State, error: Option<String>) {
        let up = matches!(state, State::Connected | State::Standby);
        metrics::gauge!("leadrouter_channel_up", "worker" => worker.to_owned()).set(if up { 1.0 } else { 0.0 });
        if let Ok(mut map) = self.0.lock() {
            let changed = map.get(worker).is_none_or(|h| h.state != state || h.error != error);
            if changed {
                let since = jiff::Timestamp::now().to_string();
                map.insert(worker.to_owned(), Health { state, error, since });
            }
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, Health> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}
