//! The CLI commands that talk to a running daemon through its admin API
//! ([`crate::admin::client`]): `queue …`, `reconcile` and `state import` ([`queue`]),
//! `subscriptions …` ([`subscriptions`]) and `trigger` ([`trigger`]).
//!
//! This layer sits on top: it imports the daemon's wire types and the admin client, and nothing
//! that runs inside the daemon imports it. Each command returns its exit code (or report); only
//! `main` exits.

pub mod queue;
pub mod subscriptions;
pub mod trigger;
