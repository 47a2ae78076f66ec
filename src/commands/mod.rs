//! The CLI commands that talk to a running daemon through its admin API
//! ([`crate::admin::client`]): `queue …` ([`queue`], with `queue status` and `queue watch` in
//! `queue_status`), `reconcile` ([`reconcile`]), `state import` ([`state`]),
//! `subscriptions …` ([`subscriptions`]) and `trigger` ([`trigger`]). What they share — the
//! `--data-dir`/`--json` options, finding the daemon, printing its answer, exit codes — is in
//! [`common`]; the progress of a long operation in `progress`.
//!
//! This layer sits on top: it imports the daemon's wire types and the admin client, and nothing
//! that runs inside the daemon imports it. Each command returns its exit code (or report); only
//! `main` exits.

pub mod common;
mod progress;
pub mod queue;
mod queue_status;
pub mod reconcile;
pub mod state;
pub mod subscriptions;
pub mod trigger;
