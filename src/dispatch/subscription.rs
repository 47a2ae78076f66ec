//! Subscriptions: a subscriber's name, realm and topic patterns, whether it wants a prefill,
//! which fields are redacted for it, and how big its queue may grow. Kept in the
//! `provisioning-subscriptions` key-value bucket (key = name).

use async_nats::jetstream::{self, kv};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::queue::kv::BucketError;
use crate::queue::QueueLimits;

const BUCKET: &str = "provisioning-subscriptions";

/// Where a subscriber's prefill stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefillStatus {
    /// No prefill was asked for.
    NotRequested,
    /// Asked for, not finished yet (it is (re)started by the dispatcher).
    Pending,
    Done,
}

/// A registered subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub name: String,
    pub realm: String,
    /// Topic patterns: regular expressions matched against the whole topic (`users/.*`); a plain
    /// module name (`users/user`) matches itself.
    pub topics: Vec<String>,
    pub prefill: bool,
    /// Field patterns removed from the bodies before messages reach this subscriber.
    pub redact: Vec<String>,
    pub limits: QueueLimits,
    pub prefill_status: PrefillStatus,
    /// The last incoming sequence before the subscription existed: its live messages start
    /// after it, and its prefill covers the state up to it.
    pub start_after: u64,
    pub created: DateTime<Utc>,
}

/// What a caller asks for (`subscriptions add`, `POST /subscriptions`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionRequest {
    pub name: String,
    #[serde(default = "default_realm")]
    pub realm: String,
    pub topics: Vec<String>,
    #[serde(default)]
    pub prefill: bool,
    /// `None`: the default redaction ([`super::redact::DEFAULT_FIELDS`]).
    #[serde(default)]
    pub redact: Option<Vec<String>>,
    #[serde(default)]
    pub max_messages: Option<i64>,
    #[serde(default)]
    pub max_bytes: Option<i64>,
}

fn default_realm() -> String {
    crate::message::REALM_UDM.to_owned()
}

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("invalid subscription: {0}")]
    Invalid(String),
    #[error("a subscription named {0} exists already")]
    Exists(String),
    #[error("no subscription named {0}")]
    Unknown(String),
    /// The `provisioning-subscriptions` bucket cannot be opened.
    #[error("subscription store: {0}")]
    Open(#[source] BucketError),
    /// The bucket cannot be read or written.
    #[error("subscription store: {0}")]
    Store(#[source] async_nats::Error),
    /// A stored subscription is not valid JSON of a subscription.
    #[error("subscription store: {name}: {source}")]
    Corrupt {
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A bucket error as a [`SubscriptionError::Store`].
fn store(error: impl Into<async_nats::Error>) -> SubscriptionError {
    SubscriptionError::Store(error.into())
}

impl SubscriptionRequest {
    /// Checks names and patterns.
    pub fn validate(&self) -> Result<(), SubscriptionError> {
        let token = |what: &str, value: &str| {
            let ok = !value.is_empty()
                && value.len() <= 64
                && value.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if ok {
                Ok(())
            } else {
                Err(SubscriptionError::Invalid(format!(
                    "{what} {value:?} must be 1–64 characters of a-z, 0-9, - and _"
                )))
            }
        };
        token("name", &self.name)?;
        token("realm", &self.realm)?;
        if self.topics.is_empty() {
            return Err(SubscriptionError::Invalid(
                "at least one topic is needed".into(),
            ));
        }
        for topic in &self.topics {
            compile(topic)?;
        }
        if self.max_messages.is_some_and(|m| m <= 0) || self.max_bytes.is_some_and(|m| m <= 0) {
            return Err(SubscriptionError::Invalid(
                "queue limits must be positive".into(),
            ));
        }
        Ok(())
    }
}

fn compile(pattern: &str) -> Result<Regex, SubscriptionError> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| SubscriptionError::Invalid(format!("topic pattern {pattern:?}: {e}")))
}

/// A subscription's topic patterns, compiled.
#[derive(Debug, Clone)]
pub struct TopicMatcher(Vec<Regex>);

impl TopicMatcher {
    pub fn new(topics: &[String]) -> Result<Self, SubscriptionError> {
        topics
            .iter()
            .map(|t| compile(t))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn matches(&self, topic: &str) -> bool {
        self.0.iter().any(|re| re.is_match(topic))
    }
}

/// The subscriptions bucket.
#[derive(Clone)]
pub struct Registry {
    store: kv::Store,
}

impl Registry {
    pub async fn open(js: &jetstream::Context) -> Result<Self, SubscriptionError> {
        let store = crate::queue::kv::open_bucket(js, BUCKET, "provisioning subscriptions")
            .await
            .map_err(SubscriptionError::Open)?;
        Ok(Self { store })
    }

    pub async fn get(&self, name: &str) -> Result<Option<Subscription>, SubscriptionError> {
        let Some(bytes) = self.store.get(name).await.map_err(store)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| SubscriptionError::Corrupt {
                name: name.to_owned(),
                source,
            })
    }

    pub async fn put(&self, subscription: &Subscription) -> Result<(), SubscriptionError> {
        let json = serde_json::to_vec(subscription).map_err(store)?;
        self.store
            .put(&subscription.name, json.into())
            .await
            .map(drop)
            .map_err(store)
    }

    pub async fn remove(&self, name: &str) -> Result<(), SubscriptionError> {
        self.store.purge(name).await.map_err(store)
    }

    /// Every subscription, by name.
    pub async fn list(&self) -> Result<Vec<Subscription>, SubscriptionError> {
        let mut names: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(store)?
            .try_collect()
            .await
            .map_err(store)?;
        names.sort();
        let mut all = Vec::new();
        for name in names {
            if let Some(subscription) = self.get(&name).await? {
                all.push(subscription);
            }
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_regular_expressions_match_whole_topics() {
        let m = TopicMatcher::new(&["users/.*".into(), "groups/group".into()]).unwrap();
        assert!(m.matches("users/user"));
        assert!(m.matches("groups/group"));
        assert!(!m.matches("groups/groupx"));
        assert!(!m.matches("oxmail/oxcontext"));
    }

    #[test]
    fn invalid_requests_say_why() {
        let request = |name: &str, topics: Vec<String>| SubscriptionRequest {
            name: name.into(),
            realm: "udm".into(),
            topics,
            prefill: false,
            redact: None,
            max_messages: None,
            max_bytes: None,
        };
        assert!(request("ok-1", vec!["users/user".into()])
            .validate()
            .is_ok());
        assert!(request("Bad.Name", vec!["x".into()]).validate().is_err());
        assert!(request("n", vec![]).validate().is_err());
        let err = request("n", vec!["(".into()]).validate().unwrap_err();
        assert!(err.to_string().contains("topic pattern"), "{err}");
    }

    #[test]
    fn a_corrupt_stored_subscription_keeps_the_json_error_as_its_cause() {
        let source = serde_json::from_slice::<Subscription>(b"{").unwrap_err();
        let err = SubscriptionError::Corrupt {
            name: "crm".into(),
            source,
        };
        let cause = std::error::Error::source(&err).expect("a source");
        assert!(cause.is::<serde_json::Error>(), "{cause:?}");
        assert_eq!(
            crate::telemetry::error_chain(&err),
            format!("subscription store: crm: {cause}")
        );
    }
}
