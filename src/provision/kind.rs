//! The closed set of OX object kinds: one [`Kind`] per file of this module, listed once in
//! [`KINDS`]. Everything else asks this registry — the watcher's batch order (through
//! `app.rs`), the OX subscription's topics, the dispatch of a message to its handler, what a
//! change touches ([`super::scope`]) and what `reconcile` compares (`crate::ops::reconcile`).
//!
//! Each kind says, next to its provisioning code, in its `pub static KIND`
//! ([`super::kind_parts`], which the kinds' files import instead of this registry):
//! - its UDM module (the message topic, named in [`super::topic`]) and whether the OX
//!   subscriber wants it;
//! - its rank in a batch (dependencies first);
//! - what a change of it touches beyond its own object ([`Kind::keys`]);
//! - how it is applied ([`Kind::apply`]);
//! - how `reconcile` compares it with OX ([`Kind::compare`], [`super::compare`]), or `None`
//!   with the reason;
//! - its documentation page.
//!
//! Adding a kind: a new file `src/provision/<kind>.rs` with a `pub static KIND: Kind`
//! and one line in [`KINDS`] (plus `pub mod <kind>;` in `mod.rs`); the compiler asks for every
//! part, and the tests below check that the parts fit together (unique topic and rank, a docs
//! page that exists and is linked from `docs/ox-provisioning.md`, one kind that compares the
//! contexts, first). See `docs/ox-provisioning.md`, "Adding an object kind".

use super::kind_parts::Kind;
use super::{access_profile, context, functional_account, group, resource, user};

/// Every OX object kind, in batch order. The one line to add a kind.
pub static KINDS: &[&Kind] = &[
    &context::KIND,
    &access_profile::KIND,
    &user::KIND,
    &group::KIND,
    &functional_account::KIND,
    &resource::KIND,
];

/// The kind whose topic is `topic`; `None` for modules that are not provisioned to OX.
pub fn of_topic(topic: &str) -> Option<&'static Kind> {
    KINDS.iter().copied().find(|kind| kind.topic == topic)
}

/// The topics the OX subscriber wants.
pub fn ox_topics() -> Vec<String> {
    KINDS
        .iter()
        .filter(|kind| kind.wanted_by_ox)
        .map(|kind| kind.topic.to_owned())
        .collect()
}

/// `(topic, rank of a change, rank of a deletion)` of every kind, for the batch order.
pub fn batch_ranks() -> impl Iterator<Item = (&'static str, u8, u8)> {
    KINDS.iter().map(|kind| {
        let rank = kind.rank;
        (kind.topic, rank.change, rank.delete)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;
    use crate::listener::batch::UNKNOWN_RANK;

    #[test]
    fn every_kind_has_a_unique_topic_that_names_a_udm_module() {
        let topics: BTreeSet<&str> = KINDS.iter().map(|k| k.topic).collect();
        assert_eq!(topics.len(), KINDS.len(), "two kinds share a topic");
        for topic in topics {
            let (flavour, name) = topic.split_once('/').expect("flavour/name");
            assert!(!flavour.is_empty() && !name.is_empty(), "{topic}");
            assert!(std::ptr::eq(
                of_topic(topic).expect("found by topic").topic,
                topic
            ));
        }
        assert!(of_topic("computers/linux").is_none());
    }

    #[test]
    fn every_kind_has_its_own_rank_before_unknown_types_and_the_batch_order_is_kept() {
        let changes: Vec<u8> = KINDS.iter().map(|k| k.rank.change).collect();
        assert!(
            changes.windows(2).all(|w| w[0] < w[1]),
            "KINDS lists the kinds in batch order, each with its own rank: {changes:?}"
        );
        assert!(changes.iter().all(|r| *r < UNKNOWN_RANK));
        for kind in KINDS {
            let delete = kind.rank.delete;
            assert!(
                delete == kind.rank.change || delete > UNKNOWN_RANK,
                "{}: a deletion ranked apart goes after unknown types",
                kind.topic
            );
        }
    }

    #[test]
    fn every_kind_has_a_docs_page_linked_from_the_provisioning_page() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let index = std::fs::read_to_string(root.join("docs/ox-provisioning.md")).unwrap();
        for kind in KINDS {
            let page = kind.docs;
            assert!(
                root.join(page).is_file(),
                "{}: {page} is missing",
                kind.topic
            );
            let link = page.trim_start_matches("docs/");
            let row = format!("| `{}` | [{link}]({link}) |", kind.topic);
            assert!(
                index.contains(&row),
                "docs/ox-provisioning.md lacks the row {row}"
            );
        }
    }

    #[test]
    fn every_kind_says_how_reconcile_compares_it_and_the_contexts_come_first() {
        use crate::provision::compare::Compare;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let contexts: Vec<&str> = KINDS
            .iter()
            .filter(|k| matches!(k.compare, Some(Compare::Contexts(_))))
            .map(|k| k.topic)
            .collect();
        assert_eq!(
            contexts,
            [KINDS[0].topic],
            "one kind compares OX's contexts, and it comes first (the rest lives in them)"
        );
        for kind in KINDS {
            let page = std::fs::read_to_string(root.join(kind.docs)).unwrap();
            let section = page
                .split_once("\n## Reconcile\n")
                .map(|(_, rest)| rest.split("\n## ").next().unwrap_or_default())
                .unwrap_or_else(|| {
                    panic!("{}: {} has no Reconcile section", kind.topic, kind.docs)
                });
            assert_eq!(
                kind.compare.is_none(),
                section.starts_with("Not compared"),
                "{}: the Reconcile section of {} must say whether it is compared",
                kind.topic,
                kind.docs
            );
        }
    }

    #[test]
    fn the_ox_subscriber_wants_every_kind_it_provisions() {
        assert_eq!(ox_topics().len(), KINDS.len());
    }
}
