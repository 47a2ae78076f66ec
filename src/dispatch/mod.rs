//! The provisioning dispatcher: subscriptions, one queue per subscriber, prefill, NATS
//! identities and redaction — the general model of `provisioning-model.md` on JetStream, of which
//! the OX subscriber is one user.
//!
//! - [`subscription`]: who wants what (realm, topic patterns, prefill, redaction, queue bounds),
//!   kept in the `provisioning-subscriptions` bucket;
//! - [`state_keeper`]: records the last state of every object in the state file, for prefill;
//! - [`state_store`]: that file (`state/provisioning-state.redb` in the data directory);
//! - [`dispatcher`]: per subscriber, copies the matching incoming messages (redacted) into the
//!   subscriber's own queue, after the prefill; [`Dispatch`] runs and registers them;
//! - [`forward`]: a dispatcher's live copying, many messages in flight, in incoming order;
//! - [`redact`]: removing secret fields before a message reaches a subscriber;
//! - [`identity`]: the NATS users and permissions of the embedded server (publishers may publish
//!   only into their realm, subscribers may read only their own queue).

pub mod dispatcher;
pub mod forward;
pub mod identity;
pub mod redact;
pub mod state_keeper;
pub mod state_store;
pub mod subscription;

pub use dispatcher::{Dispatch, DispatchError, SubscriberStatus};
pub use subscription::{PrefillStatus, Subscription, SubscriptionError, SubscriptionRequest};
