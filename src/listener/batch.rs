//! The order of a batch: files that are new at the same look at the folder are queued by object
//! type first, then by name — the order the original connector used for a trigger run.
//!
//! The converter keeps only the last file per object in a batch and names it after the object's
//! *last* change, so a batch's name order can put an object before the one it depends on (a user
//! before the context created for it, a group before its new members). Ordering by type puts
//! dependencies first. Which type goes where is not the listener's business: the object kinds
//! say it (`crate::provision::kind`), and `app.rs` hands their [`Ranks`] to the watcher. Types
//! without a rank go after every ranked change, but before ranked deletions placed after them
//! (a context's deletion comes after everything that might still move out of the context).
//! Within one rank, name order is kept.

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::IgnoredAny;
use serde::Deserialize;

/// The rank of other types, and of files that cannot be read or parsed.
pub const UNKNOWN_RANK: u8 = 100;

/// The rank of each object type in a batch, for a change and for a deletion; lower goes first.
#[derive(Debug, Clone, Default)]
pub struct Ranks {
    by_type: Arc<HashMap<String, (u8, u8)>>,
}

impl Ranks {
    /// From `(udm_object_type, rank of a change, rank of a deletion)`.
    pub fn new<'a>(ranks: impl IntoIterator<Item = (&'a str, u8, u8)>) -> Self {
        let by_type = ranks
            .into_iter()
            .map(|(module, change, delete)| (module.to_owned(), (change, delete)))
            .collect();
        Self {
            by_type: Arc::new(by_type),
        }
    }

    /// The rank of a file in its batch; lower goes first.
    pub fn rank(&self, udm_object_type: &str, is_delete: bool) -> u8 {
        match self.by_type.get(udm_object_type) {
            Some((_, delete)) if is_delete => *delete,
            Some((change, _)) => *change,
            None => UNKNOWN_RANK,
        }
    }

    /// The rank of a listener file with content `raw`, from a quick look at its type and whether
    /// it is a delete. Content that cannot be read that way gets the rank of unknown types; it
    /// is validated properly when it is queued.
    pub fn rank_of(&self, raw: &[u8]) -> u8 {
        #[derive(Deserialize)]
        struct Peek {
            udm_object_type: String,
            object: Option<IgnoredAny>,
        }
        serde_json::from_slice::<Peek>(raw)
            .map(|peek| self.rank(&peek.udm_object_type, peek.object.is_none()))
            .unwrap_or(UNKNOWN_RANK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranks() -> Ranks {
        Ranks::new([("a/parent", 0, 200), ("b/child", 10, 10)])
    }

    #[test]
    fn ranked_types_go_first_unknown_ones_after_and_late_deletions_last() {
        let ranks = ranks();
        let order = [
            ranks.rank("a/parent", false),
            ranks.rank("b/child", true),
            ranks.rank("computers/linux", false),
            ranks.rank("a/parent", true),
        ];
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }

    #[test]
    fn a_file_is_ranked_by_a_quick_look() {
        let ranks = ranks();
        assert_eq!(
            ranks.rank_of(br#"{"udm_object_type": "a/parent", "object": null}"#),
            200
        );
        assert_eq!(
            ranks.rank_of(br#"{"udm_object_type": "a/parent", "object": {"a": 1}}"#),
            0
        );
        assert_eq!(ranks.rank_of(b"{"), UNKNOWN_RANK);
    }
}
