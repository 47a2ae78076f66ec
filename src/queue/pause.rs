//! Pausing a subscriber's queue: JetStream consumer pause (nats-server 2.11 and later).
//!
//! `ox-connector queue pause` stops OX provisioning during OX maintenance without stopping the
//! daemon: the server delivers nothing more to the OX subscriber's consumer until the pause
//! ends (`queue resume`, or the time given with `--for`). Changes already being applied finish;
//! everything else keeps arriving and waits in the queue (and listener files wait on disk once it
//! is full). The pause is the consumer's, on the server: it survives a restart of the daemon, and
//! the daemon carries it over when it creates the consumer afresh
//! ([`super::recreate_subscriber_consumer`]).

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};

use super::SetupError;

/// A pause without an end: until `queue resume` (the server needs a time; a century is forever
/// for this purpose).
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

pub use crate::status::Paused;

/// Pauses subscriber `name`'s consumer for `duration` (`None`: until resumed).
pub async fn pause(
    js: &jetstream::Context,
    name: &str,
    duration: Option<Duration>,
) -> Result<Paused, SetupError> {
    let until = time::OffsetDateTime::now_utc() + duration.unwrap_or(FOREVER);
    stream_of(js, name)
        .await?
        .pause_consumer(name, until)
        .await
        .map_err(|e| SetupError::consumer(name, e))?;
    Ok(Paused {
        until: duration.and_then(|_| to_chrono(until)),
    })
}

/// Ends the pause of subscriber `name`'s consumer (nothing happens if it is not paused).
pub async fn resume(js: &jetstream::Context, name: &str) -> Result<(), SetupError> {
    stream_of(js, name)
        .await?
        .resume_consumer(name)
        .await
        .map_err(|e| SetupError::consumer(name, e))?;
    Ok(())
}

/// Whether subscriber `name`'s consumer is paused, and until when.
pub async fn paused(js: &jetstream::Context, name: &str) -> Result<Option<Paused>, SetupError> {
    let mut consumer: consumer::PullConsumer = stream_of(js, name)
        .await?
        .get_consumer(name)
        .await
        .map_err(|e| SetupError::consumer(name, e))?;
    let info = consumer
        .info()
        .await
        .map_err(|e| SetupError::consumer(name, e))?;
    Ok(of_info(info))
}

/// The pause a consumer's info shows.
pub fn of_info(info: &consumer::Info) -> Option<Paused> {
    if !info.paused {
        return None;
    }
    let until = info.config.pause_until.and_then(to_chrono);
    let forever = until.is_some_and(|u| u > Utc::now() + chrono::Duration::days(365 * 50));
    Some(Paused {
        until: until.filter(|_| !forever),
    })
}

async fn stream_of(
    js: &jetstream::Context,
    name: &str,
) -> Result<jetstream::stream::Stream, SetupError> {
    let stream = super::subscriber_stream(name);
    js.get_stream(&stream)
        .await
        .map_err(|e| SetupError::stream(&stream, e))
}

fn to_chrono(at: time::OffsetDateTime) -> Option<DateTime<Utc>> {
    let nanos = at.unix_timestamp_nanos();
    let seconds = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    let rest = u32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?;
    DateTime::from_timestamp(seconds, rest)
}
