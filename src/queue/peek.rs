//! A look into a subscriber's queue without consuming from it: the queued messages of one topic,
//! by stream sequence ([`crate::apply::QueuedMessages`]). Provisioning uses it to apply a
//! context creation queued behind an object of that context.

use async_nats::jetstream::{self, stream::Stream};

use crate::apply::{Queued, QueuedMessages};
use crate::message::REALM_UDM;

/// Subscriber `name`'s queue, read by stream sequence.
pub struct SubscriberQueue {
    stream: Stream,
    name: String,
}

impl SubscriberQueue {
    /// Subscriber `name`'s queue; `None` if it does not exist (yet) or cannot be read.
    pub async fn open(js: &jetstream::Context, name: &str) -> Option<Self> {
        let stream = js.get_stream(super::subscriber_stream(name)).await.ok()?;
        Some(Self {
            stream,
            name: name.to_owned(),
        })
    }
}

impl QueuedMessages for SubscriberQueue {
    fn next_of_topic<'a>(&'a self, topic: &'a str, from: u64) -> Queued<'a> {
        Box::pin(async move {
            let subject = super::subscriber_subject(&self.name, REALM_UDM, topic);
            let mut sequence = from;
            loop {
                let found = super::next_on_subject(&self.stream, &subject, sequence).await?;
                sequence = found.sequence + 1;
                // An undecodable one is dropped by the consumer when its turn comes.
                if let Ok(message) = serde_json::from_slice(&found.payload) {
                    return Some((found.sequence, message));
                }
            }
        })
    }
}
