//! ② The provisioning message: one listener file as it travels through JetStream.
//!
//! The envelope keeps the fields of the Nubus provisioning model (`realm`, `topic`,
//! `publisher_name`, `ts`, `body.old`/`body.new`) so that a Nubus-style subscriber can read it,
//! and adds what that model lacks: a schema number, a deterministic `id` (also the
//! `Nats-Msg-Id`, so a re-publish is de-duplicated by the server; a file put back from
//! `skipped/` or `broken/` adds its requeue generation, so it is published again), the
//! operation, the entry UUID and the listener file it came from. `docs/queue.md` documents the
//! format.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::listener::{ListenerFile, ListenerFileName};

/// The message format version; bumped on incompatible changes. Readers ignore unknown fields.
pub const SCHEMA: u32 = 1;
/// The realm of messages about UDM objects.
pub const REALM_UDM: &str = "udm";
/// The publisher name stamped on messages made from listener files.
pub const PUBLISHER_NAME: &str = "ox-connector-listener";
/// Prefix of every provisioning subject: `provisioning.<realm>.<topic>`.
pub const SUBJECT_PREFIX: &str = "provisioning";
/// Header naming the listener file a message came from (also in the body, as `source.file`).
pub const HEADER_SOURCE_FILE: &str = "Ox-Listener-File";

/// Namespace of the UUIDv5 message ids (a fixed random UUID: ids are stable across versions).
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f78_2d63_6f6e_4e65_8374_6f72_2d6d_7367);

/// What happened to the object, as far as the publisher knows. A listener file cannot tell a
/// create from a modify (both are "modify" upstream); only the subscriber's state can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// The object exists with the state in `body.new` (created, changed, moved or renamed).
    Modify,
    /// The object was deleted; `body.new` is null.
    Delete,
    /// The object's current state, sent to a new subscriber before the live changes (prefill).
    Snapshot,
}

impl Operation {
    /// The name as in the JSON (`modify`, `delete`, `snapshot`), a bounded metric label too.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Modify => "modify",
            Operation::Delete => "delete",
            Operation::Snapshot => "snapshot",
        }
    }
}

/// The object before and after the change. Listener files carry no old state, so `old` is
/// always absent on messages made from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Body {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Map<String, Value>>,
    pub new: Option<Map<String, Value>>,
}

/// Where a message came from: the listener file and a digest of the bytes read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The listener file name (not the path).
    pub file: String,
    /// Hex SHA-256 of the file content that was published.
    pub sha256: String,
}

/// A provisioning message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisioningMessage {
    pub schema: u32,
    /// Deterministic id: UUIDv5 of the file name, content digest and requeue generation. Also
    /// the `Nats-Msg-Id`.
    pub id: Uuid,
    pub realm: String,
    /// The UDM module, e.g. `users/user`.
    pub topic: String,
    pub op: Operation,
    pub publisher_name: String,
    /// When the change happened (the listener file's name, local time, converted to UTC).
    pub ts: DateTime<Utc>,
    /// The entry UUID: the ordering and state key of the object.
    pub object_id: String,
    /// The object's DN (the new DN after a move; the DN at deletion time for a delete).
    pub dn: String,
    /// UDM options of the object; absent on a delete.
    #[serde(default)]
    pub options: Option<Vec<String>>,
    pub body: Body,
    /// The listener file behind the message; absent for messages from other publishers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

impl ProvisioningMessage {
    /// Builds the message for a validated listener file.
    pub fn from_listener_file(file: &ListenerFile) -> Self {
        let digest = sha256_hex(&file.raw);
        let id = match &file.requeue_generation {
            None => Uuid::new_v5(&ID_NAMESPACE, format!("{}\n{digest}", file.name).as_bytes()),
            Some(generation) => Uuid::new_v5(
                &ID_NAMESPACE,
                format!("{}\n{digest}\nrequeued {generation}", file.name).as_bytes(),
            ),
        };
        let ts = ListenerFileName::new(&file.name)
            .and_then(|n| n.timestamp())
            .unwrap_or_else(Utc::now);
        Self {
            schema: SCHEMA,
            id,
            realm: REALM_UDM.to_owned(),
            topic: file.udm_object_type.clone(),
            op: if file.is_delete() {
                Operation::Delete
            } else {
                Operation::Modify
            },
            publisher_name: PUBLISHER_NAME.to_owned(),
            ts,
            object_id: file.entry_uuid.clone(),
            dn: file.dn.clone(),
            options: file.options.clone(),
            body: Body {
                old: None,
                new: file.object.clone(),
            },
            source: Some(Source {
                file: file.name.clone(),
                sha256: digest,
            }),
        }
    }

    /// The NATS subject: `provisioning.<realm>.<topic>`, e.g. `provisioning.udm.users/user`.
    pub fn subject(&self) -> String {
        subject(&self.realm, &self.topic)
    }

    /// The listener file name, if the message came from one.
    pub fn source_file(&self) -> Option<&str> {
        self.source.as_ref().map(|s| s.file.as_str())
    }
}

impl crate::telemetry::events::MessageFields for ProvisioningMessage {
    fn file(&self) -> &str {
        self.source_file().unwrap_or("-")
    }

    fn object_type(&self) -> &str {
        &self.topic
    }

    fn operation(&self) -> &'static str {
        self.op.as_str()
    }

    fn dn(&self) -> &str {
        &self.dn
    }

    fn entry_uuid(&self) -> &str {
        &self.object_id
    }
}

/// The subject of messages of `topic` in `realm`.
pub fn subject(realm: &str, topic: &str) -> String {
    format!("{SUBJECT_PREFIX}.{realm}.{topic}")
}

/// The SHA-256 digest of `bytes`, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let digest = Sha256::digest(bytes);
    digest
        .iter()
        .fold(String::with_capacity(2 * digest.len()), |mut hex, b| {
            // Writing into a String cannot fail.
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn file(name: &str, text: &str) -> ListenerFile {
        ListenerFile::parse(Path::new(name), name.into(), text.as_bytes().to_vec()).unwrap()
    }

    const USER: &str = r#"{"dn": "uid=a,dc=x", "id": "u-1", "object": {"username": "a"},
        "options": ["default"], "udm_object_type": "users/user"}"#;

    #[test]
    fn the_id_depends_on_name_and_content_only() {
        let a =
            ProvisioningMessage::from_listener_file(&file("2025-01-01-00-00-00-000001.json", USER));
        let again =
            ProvisioningMessage::from_listener_file(&file("2025-01-01-00-00-00-000001.json", USER));
        let other_name =
            ProvisioningMessage::from_listener_file(&file("2025-01-01-00-00-00-000002.json", USER));
        let other_content = ProvisioningMessage::from_listener_file(&file(
            "2025-01-01-00-00-00-000001.json",
            &USER.replace("\"a\"}", "\"b\"}"),
        ));
        assert_eq!(a.id, again.id);
        assert_ne!(a.id, other_name.id);
        assert_ne!(a.id, other_content.id);
    }

    #[test]
    fn a_requeued_file_gets_a_new_id_per_generation() {
        let mut f = file("2025-01-01-00-00-00-000001.json", USER);
        let first = ProvisioningMessage::from_listener_file(&f).id;
        f.requeue_generation = Some("1".into());
        let requeued = ProvisioningMessage::from_listener_file(&f).id;
        f.requeue_generation = Some("2".into());
        let again = ProvisioningMessage::from_listener_file(&f).id;
        assert_ne!(first, requeued);
        assert_ne!(requeued, again);
    }

    #[test]
    fn a_listener_file_becomes_a_udm_message() {
        let m =
            ProvisioningMessage::from_listener_file(&file("2025-01-01-00-00-00-000001.json", USER));
        assert_eq!(m.subject(), "provisioning.udm.users/user");
        assert_eq!(m.op, Operation::Modify);
        assert_eq!(m.object_id, "u-1");
        assert_eq!(m.dn, "uid=a,dc=x");
        assert_eq!(m.body.new.as_ref().unwrap()["username"], "a");
        assert_eq!(m.source_file(), Some("2025-01-01-00-00-00-000001.json"));

        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["realm"], "udm");
        assert_eq!(json["topic"], "users/user");
        assert_eq!(json["publisher_name"], "ox-connector-listener");
        assert!(json["body"].get("old").is_none());
        let back: ProvisioningMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn a_deleted_object_becomes_a_delete_with_a_null_body() {
        let m = ProvisioningMessage::from_listener_file(&file(
            "2025-01-01-00-00-00-000001.json",
            r#"{"dn": "cn=g", "id": "g-1", "object": null, "options": null, "udm_object_type": "groups/group"}"#,
        ));
        assert_eq!(m.op, Operation::Delete);
        let json = serde_json::to_value(&m).unwrap();
        assert!(json["body"]["new"].is_null());
    }
}
