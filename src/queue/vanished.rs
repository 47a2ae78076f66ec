//! Consumers that nats-server 2.9 keeps waiting for a message that no longer exists.
//!
//! nats-server 2.9 (Debian bookworm ships 2.9.10, the App Center image too) writes a consumer's
//! position and a stream's removals of acknowledged messages to disk lazily and independently.
//! Killed (SIGKILL, OOM), it can come back with a consumer that still has a message in flight
//! which the stream already removed. It then retries that message every ack wait and fails
//! ("Received an error looking up message for consumer: deleted message" in its log); a
//! consumer with one message in flight (the state keeper) delivers nothing else, ever. (Found
//! by the kill -9 suite: the OX subscriber's dispatcher, then one message at a time, stopped for
//! good.) The consumers with more in flight get past it otherwise: the dispatchers acknowledge
//! cumulatively (a later ack covers the vanished message), and the OX subscriber's consumer is
//! created afresh at every start.
//!
//! [`release_vanished`] finds that state and acknowledges the vanished message on the
//! consumer's behalf, on the acknowledgement subject the server gives each delivery
//! (`$JS.ACK.<stream>.<consumer>.<deliveries>.<stream seq>.<consumer seq>.<time>.<pending>`).
//! Nothing is lost by it: a message is removed from a work queue only once its consumer
//! acknowledged it, and from an interest stream only once every consumer did.

use async_nats::jetstream::{self, consumer, stream::RawMessageErrorKind};

/// The stream sequence of the one message `info`'s consumer has in flight, if it allows one
/// message in flight and has one.
fn in_flight(info: &consumer::Info) -> Option<u64> {
    let one = info.config.max_ack_pending == 1
        && info.num_ack_pending == 1
        && info.delivered.stream_sequence > info.ack_floor.stream_sequence;
    one.then_some(info.delivered.stream_sequence)
}

/// Acknowledges the message consumer `consumer` of `stream` has in flight if the stream no
/// longer has it (see the module doc). Returns its stream sequence if it was released.
///
/// Only consumers with one message in flight are looked at. An ordinary message in flight
/// still exists and is left alone; one acknowledged while this looks moves the consumer's
/// acknowledgement floor first, which the second look sees.
pub async fn release_vanished(
    js: &jetstream::Context,
    stream: &str,
    consumer: &str,
) -> Result<Option<u64>, String> {
    let handle = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let mut consumer_handle: consumer::PullConsumer = handle
        .get_consumer(consumer)
        .await
        .map_err(|e| e.to_string())?;
    let before = consumer_handle.cached_info().clone();
    let Some(sequence) = in_flight(&before) else {
        return Ok(None);
    };
    match handle.get_raw_message(sequence).await {
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => {}
        Err(e) => return Err(e.to_string()),
    }
    let after = consumer_handle
        .info()
        .await
        .map_err(|e| e.to_string())?
        .clone();
    if in_flight(&after) != Some(sequence) || after.ack_floor != before.ack_floor {
        return Ok(None);
    }
    let subject = format!(
        "$JS.ACK.{stream}.{consumer}.1.{sequence}.{}.0.0",
        after.delivered.consumer_sequence
    );
    js.client()
        .request(subject, "+ACK".into())
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(sequence))
}
