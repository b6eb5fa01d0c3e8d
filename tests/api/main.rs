//! Behaviour through the real router over real HTTP, on SQLite and PostgreSQL alike.

mod support;

mod architecture;
mod binary;
mod concurrency;
mod connections;
mod contacts;
mod dashboard;
mod email;
mod followup;
mod forms;
mod leads;
mod providers;
mod routing;
mod security;
mod smtp_sink;
mod stats;
mod telegram;
mod telegram_fake;
mod telegram_reps;
mod webdriver;
mod webhooks;
