//! What the application's parts share: the store, the settings, and the outbox's wake-up.
//! Intake (`intake`), people's changes (`pipeline`) and the scheduled jobs (`jobs`) are
//! separate types, each holding a `Core`.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::settings::Settings;
use crate::store::Store;

#[derive(Clone)]
pub struct Core {
    pub store: Store,
    pub settings: Arc<Settings>,
    outbox_wakeup: Arc<Notify>,
}

impl Core {
    pub fn new(store: Store, settings: Arc<Settings>) -> Self {
        Core { store, settings, outbox_wakeup: Arc::new(Notify::new()) }
    }

    /// After a commit that may have written outbox rows: deliver now, not at the next poll.
    pub fn wake_outbox(&self) {
        self.outbox_wakeup.notify_one();
    }

    /// What the outbox worker waits on between polls.
    pub fn outbox_wakeup(&self) -> Arc<Notify> {
        self.outbox_wakeup.clone()
    }
}
