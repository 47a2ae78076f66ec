//! The order of a batch: files that are new at the same look at the folder are queued by object
//! type first, then by name — the order the original connector used for a trigger run.
//!
//! The converter keeps only the last file per object in a batch and names it after the object's
//! *last* change, so a batch's name order can put an object before the one it depends on (a user
//! before the context created for it, a group before its new members). Ordering by type puts
//! dependencies first: contexts (not their deletion), access profiles, users, groups, functional
//! accounts, resources, other types, and context deletions last (after everything that might
//! still move out of the context). Within one type, name order is kept.

use serde::de::IgnoredAny;
use serde::Deserialize;

/// The rank of other types, and of files that cannot be read or parsed.
pub const UNKNOWN_RANK: u8 = 6;

/// The rank of a file in its batch; lower goes first.
pub fn rank(udm_object_type: &str, is_delete: bool) -> u8 {
    match (udm_object_type, is_delete) {
        ("oxmail/oxcontext", false) => 0,
        ("oxmail/accessprofile", _) => 1,
        ("users/user", _) => 2,
        ("groups/group", _) => 3,
        ("oxmail/functional_account", _) => 4,
        ("oxresources/oxresources", _) => 5,
        ("oxmail/oxcontext", true) => 7,
        _ => UNKNOWN_RANK,
    }
}

/// The rank of a listener file with content `raw`, from a quick look at its type and whether it
/// is a delete. Content that cannot be read that way gets the rank of unknown types; it is
/// validated properly when it is queued.
pub fn rank_of(raw: &[u8]) -> u8 {
    #[derive(Deserialize)]
    struct Peek {
        udm_object_type: String,
        object: Option<IgnoredAny>,
    }
    serde_json::from_slice::<Peek>(raw)
        .map(|peek| rank(&peek.udm_object_type, peek.object.is_none()))
        .unwrap_or(UNKNOWN_RANK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_go_first_and_context_deletions_last() {
        let order = [
            rank("oxmail/oxcontext", false),
            rank("oxmail/accessprofile", false),
            rank("users/user", true),
            rank("groups/group", false),
            rank("oxmail/functional_account", false),
            rank("oxresources/oxresources", false),
            rank("computers/linux", false),
            rank("oxmail/oxcontext", true),
        ];
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }

    #[test]
    fn a_file_is_ranked_by_a_quick_look() {
        let deletion = br#"{"udm_object_type": "oxmail/oxcontext", "object": null}"#;
        assert_eq!(rank_of(deletion), 7);
        let change = br#"{"udm_object_type": "oxmail/oxcontext", "object": {"a": 1}}"#;
        assert_eq!(rank_of(change), 0);
        assert_eq!(rank_of(b"{"), UNKNOWN_RANK);
    }
}
