//! Comparing what the state store remembers with what OX holds: the part of an object kind
//! that `reconcile` asks ([`Compare`], in [`super::kind_parts::Kind::compare`]), the drift a
//! comparison finds ([`Drift`]) and the pieces the kinds' comparisons share.
//!
//! Each kind compares its own objects next to its provisioning code (what it lists in OX,
//! which fields it compares, what "differs" means); the driver, `crate::ops::reconcile`, walks
//! the contexts, asks each kind, and plans and queues the repairs.

use std::collections::{BTreeSet, HashSet};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::ox::soap::{Credentials, OxError};
use crate::telemetry::progress::Progress;

use super::state::{ObjectState, OxRef};
use super::Provisioner;

/// How `reconcile` compares a kind with OX.
pub enum Compare {
    /// OX's contexts themselves: compared once per run, before anything in them.
    Contexts(ContextsFn),
    /// Objects that live in a context: compared in each context.
    InContext(InContextCompare),
}

/// Compares the remembered contexts (those the run wants) with OX's.
pub type ContextsFn = for<'a> fn(&'a Run<'a>) -> BoxFuture<'a, Result<ContextsCompared, OxError>>;

/// Compares the kind's remembered objects in one context (`known`, chosen by the driver
/// through [`InContextCompare::placement`]) with what OX has there; returns the drift.
pub type InContextFn =
    for<'a> fn(&'a InContext<'a>, &'a [Known<'a>]) -> BoxFuture<'a, Result<Vec<Drift>, OxError>>;

/// The comparison of a kind whose objects live in contexts.
pub struct InContextCompare {
    /// Where a remembered object keeps its OX id.
    pub placement: Placement,
    pub compare: InContextFn,
    /// What a remembered object forgets before a repair applies it again, so that the apply
    /// sends all of it; `None`: nothing.
    pub before_repair: Option<fn(&mut ObjectState)>,
}

/// Where a remembered object keeps the OX id it has in a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In one context: `ox.context` and `ox.object` (users, resources).
    OneContext,
    /// One OX object in each of several contexts: `ox.per_context` (groups).
    PerContext,
}

impl Placement {
    /// The remembered OX object of `state` in context `c`.
    pub fn in_context(self, state: &ObjectState, c: i32) -> Option<&OxRef> {
        match self {
            Placement::OneContext if state.ox.context == Some(c) => state.ox.object.as_ref(),
            Placement::OneContext => None,
            Placement::PerContext => state.ox.per_context.get(&c),
        }
    }

    /// The same, to correct it.
    pub fn in_context_mut(self, state: &mut ObjectState, c: i32) -> Option<&mut OxRef> {
        match self {
            Placement::OneContext if state.ox.context == Some(c) => state.ox.object.as_mut(),
            Placement::OneContext => None,
            Placement::PerContext => state.ox.per_context.get_mut(&c),
        }
    }
}

/// What the comparisons of one run share.
pub struct Run<'a> {
    pub p: &'a Provisioner,
    /// Everything the state store remembers, by entry UUID.
    pub remembered: &'a [(String, ObjectState)],
    /// Only this context (`--context N`); `None`: all.
    pub only: Option<i32>,
    pub progress: &'a Progress,
}

impl Run<'_> {
    /// Whether the run compares context `c`.
    pub fn wants(&self, c: i32) -> bool {
        self.only.is_none_or(|only| only == c)
    }
}

/// What the comparison of the contexts found.
pub struct ContextsCompared {
    pub drift: Vec<Drift>,
    /// Remembered contexts compared.
    pub compared: usize,
    /// The contexts OX has (those the run wants).
    pub in_ox: BTreeSet<i32>,
}

/// One context being compared.
pub struct InContext<'a> {
    pub p: &'a Provisioner,
    pub c: i32,
    /// Whether OX has the context; if not, everything remembered in it is missing in OX.
    pub exists: bool,
    /// The context admin's login.
    pub auth: Credentials,
    pub progress: &'a Progress,
}

/// A remembered object of the kind being compared, with its OX id and name in the context.
pub struct Known<'a> {
    pub uuid: &'a str,
    pub state: &'a ObjectState,
    pub ox: OxRef,
}

/// A kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    MissingInOx,
    StaleId,
    Differs,
    UnknownInOx,
}

impl DriftKind {
    pub const ALL: [DriftKind; 4] = [
        DriftKind::MissingInOx,
        DriftKind::StaleId,
        DriftKind::Differs,
        DriftKind::UnknownInOx,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            DriftKind::MissingInOx => "missing_in_ox",
            DriftKind::StaleId => "stale_id",
            DriftKind::Differs => "differs",
            DriftKind::UnknownInOx => "unknown_in_ox",
        }
    }

    /// Table text.
    pub fn text(self) -> &'static str {
        match self {
            DriftKind::MissingInOx => "missing in OX",
            DriftKind::StaleId => "stale id",
            DriftKind::Differs => "differs",
            DriftKind::UnknownInOx => "unknown in OX",
        }
    }
}

/// One difference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Drift {
    pub kind: DriftKind,
    /// `context`, `user`, `group` or `resource`.
    pub object: String,
    pub context: Option<i32>,
    pub name: String,
    pub ox_id: Option<i32>,
    pub entry_uuid: Option<String>,
    pub dn: Option<String>,
    pub detail: String,
    /// A change of this object waits in `listener/`; it is not repaired.
    pub pending_change: bool,
    /// What `--apply` did (or would do).
    pub repair: Option<String>,
}

impl Drift {
    /// A difference of the remembered object `uuid` (its kind and detail set with
    /// [`Drift::kind`]).
    pub fn about(
        uuid: &str,
        state: &ObjectState,
        object: &str,
        context: Option<i32>,
        name: &str,
    ) -> Self {
        Drift {
            kind: DriftKind::Differs,
            object: object.into(),
            context,
            name: name.into(),
            ox_id: None,
            entry_uuid: Some(uuid.to_owned()),
            dn: Some(state.dn.clone()),
            detail: String::new(),
            pending_change: false,
            repair: None,
        }
    }

    /// An OX object the connector does not know.
    pub fn unknown(
        object: &str,
        context: Option<i32>,
        name: String,
        id: Option<i32>,
        detail: String,
    ) -> Self {
        Drift {
            kind: DriftKind::UnknownInOx,
            object: object.into(),
            context,
            name,
            ox_id: id,
            entry_uuid: None,
            dn: None,
            detail,
            pending_change: false,
            repair: None,
        }
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    pub fn kind(mut self, kind: DriftKind, detail: String) -> Self {
        self.kind = kind;
        self.detail = detail;
        self
    }

    fn at(self, id: i32) -> Self {
        Drift {
            ox_id: Some(id),
            ..self
        }
    }
}

/// Compares the remembered objects of one kind in context `c` with OX's `(id, name, object)`
/// list by id and name (names case-insensitively): a match by both is compared field by field
/// with `diffs`, a name under another id is a stale id, an id under another name differs,
/// neither is missing in OX; every OX object no remembered one claimed is unknown.
pub fn by_id_and_name<T>(
    c: i32,
    object: &str,
    known: &[Known<'_>],
    ox: &[(i32, String, T)],
    diffs: impl Fn(&Known<'_>, &T) -> Option<String>,
) -> Vec<Drift> {
    let mut drift = Vec::new();
    let mut claimed = HashSet::new();
    for k in known {
        let (id, name) = (k.ox.id, &k.ox.name);
        let base = Drift::about(k.uuid, k.state, object, Some(c), name);
        let by_id = ox.iter().find(|(i, _, _)| *i == id);
        let by_name = ox.iter().find(|(_, n, _)| n.eq_ignore_ascii_case(name));
        match (by_id, by_name) {
            (Some((i, n, found)), _) if n.eq_ignore_ascii_case(name) => {
                claimed.insert(*i);
                if let Some(detail) = diffs(k, found) {
                    drift.push(base.kind(DriftKind::Differs, detail).at(*i));
                }
            }
            (_, Some((i, _, _))) => {
                claimed.insert(*i);
                let detail = format!("remembered as OX id {id}, but OX has {name} as id {i}");
                drift.push(base.kind(DriftKind::StaleId, detail).at(*i));
            }
            (Some((i, n, _)), None) => {
                claimed.insert(*i);
                let detail = format!("name: OX {n:?}, UCS {name:?}");
                drift.push(base.kind(DriftKind::Differs, detail).at(*i));
            }
            (None, None) => {
                let detail = format!("OX has no {object} {name} (id {id})");
                drift.push(base.kind(DriftKind::MissingInOx, detail).at(id));
            }
        }
    }
    for (id, name, _) in ox.iter().filter(|(id, _, _)| !claimed.contains(id)) {
        drift.push(Drift::unknown(
            object,
            Some(c),
            name.clone(),
            Some(*id),
            format!("OX {object} {id} is not known to the connector"),
        ));
    }
    drift
}

/// `field: OX "…", UCS "…"`.
pub fn field_diff(field: &str, ox: Option<&str>, ucs: &str) -> String {
    format!("{field}: OX {:?}, UCS {ucs:?}", ox.unwrap_or(""))
}

/// The field differences joined into one detail; `None` when there are none.
pub fn joined(diffs: Vec<String>) -> Option<String> {
    (!diffs.is_empty()).then(|| diffs.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::state::OxIds;

    fn state(dn: &str) -> ObjectState {
        ObjectState {
            object_type: crate::provision::topic::RESOURCE.into(),
            dn: dn.into(),
            object: Default::default(),
            ox: OxIds::default(),
            source_file: None,
            applied_at: chrono::Utc::now(),
            groups_pending: Default::default(),
        }
    }

    fn known<'a>(uuid: &'a str, state: &'a ObjectState, id: i32, name: &str) -> Known<'a> {
        Known {
            uuid,
            state,
            ox: OxRef {
                id,
                name: name.into(),
                members: Vec::new(),
            },
        }
    }

    #[test]
    fn objects_are_matched_by_id_and_name_and_every_other_ox_object_is_unknown() {
        let s = state("cn=x");
        let known = [
            known("same", &s, 1, "Beamer"),
            known("fields", &s, 2, "room"),
            known("stale", &s, 3, "car"),
            known("renamed", &s, 4, "bike"),
            known("missing", &s, 5, "boat"),
        ];
        let ox = [
            (1, "beamer".to_string(), "same"),
            (2, "ROOM".to_string(), "other"),
            (30, "Car".to_string(), "same"),
            (4, "cycle".to_string(), "same"),
            (6, "made in OX".to_string(), "same"),
        ];
        let drift = by_id_and_name(10, "resource", &known, &ox, |_, ox| {
            (*ox != "same").then(|| "description: OX \"other\"".to_string())
        });
        let found: Vec<(Option<&str>, DriftKind, Option<i32>, &str)> = drift
            .iter()
            .map(|d| (d.entry_uuid.as_deref(), d.kind, d.ox_id, d.detail.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    Some("fields"),
                    DriftKind::Differs,
                    Some(2),
                    "description: OX \"other\""
                ),
                (
                    Some("stale"),
                    DriftKind::StaleId,
                    Some(30),
                    "remembered as OX id 3, but OX has car as id 30"
                ),
                (
                    Some("renamed"),
                    DriftKind::Differs,
                    Some(4),
                    "name: OX \"cycle\", UCS \"bike\""
                ),
                (
                    Some("missing"),
                    DriftKind::MissingInOx,
                    Some(5),
                    "OX has no resource boat (id 5)"
                ),
                (
                    None,
                    DriftKind::UnknownInOx,
                    Some(6),
                    "OX resource 6 is not known to the connector"
                ),
            ]
        );
        assert!(drift.iter().all(|d| d.context == Some(10)));
    }

    #[test]
    fn a_placement_finds_the_ox_object_of_a_context() {
        let mut user = state("uid=anna");
        user.ox = OxIds::in_context(10, 7, "anna".into());
        assert_eq!(
            Placement::OneContext.in_context(&user, 10).map(|r| r.id),
            Some(7)
        );
        assert!(Placement::OneContext.in_context(&user, 20).is_none());
        let mut group = state("cn=team");
        for (c, id) in [(10, 1), (20, 2)] {
            let r = OxRef {
                id,
                name: "team".into(),
                members: vec![7],
            };
            group.ox.per_context.insert(c, r);
        }
        if let Some(r) = Placement::PerContext.in_context_mut(&mut group, 20) {
            r.id = 22;
        }
        assert_eq!(group.ox.per_context[&10].id, 1);
        assert_eq!(group.ox.per_context[&20].id, 22);
        assert!(Placement::PerContext.in_context(&group, 30).is_none());
    }
}
