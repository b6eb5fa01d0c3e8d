//! Surfaces people act through besides HTTP: the reps' console in Telegram.

pub mod telegram;
