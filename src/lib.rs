//! ox-connector provisions Open-Xchange App Suite from a UCS directory.
//!
//! # Layout
//! The modules follow the data flow of one change, ① to ⑥:
//!
//! - [`listener`] ① listener files: format, sorted scan, watcher, quarantine of broken files.
//! - [`message`] ② the provisioning message made from a listener file; subject; message id.
//! - [`queue`] ③ JetStream: stream and consumer layout, publishing, the ordered consumer
//!   (given its next step by [`app`]), a look into the queue for provisioning, the embedded
//!   `nats-server`; [`dispatch`] fans the incoming messages out into one queue per
//!   subscriber (subscriptions, prefill, NATS identities, redaction).
//! - [`provision`] ④ applying messages to OX (behind the [`apply::Applier`] contract; it sees
//!   the queue only through [`apply::QueuedMessages`]).
//! - [`ox`] ⑤ the OX SOAP client.
//! - [`done`] ⑥ the only code that deletes listener files.
//!
//! Around them: [`app`] wires the steps and stops them in order, [`cli`] and [`config`] read and
//! validate settings, [`admin`] is the HTTP API of a running daemon, [`ops`] the admin's
//! operations that run inside it (queue management, readiness, reconcile, state import; the
//! admin API serves them in `admin::routes`), [`status`] holds what an
//! admin needs to see, [`telemetry`] the logs and metrics (every step uses it; it imports
//! none of them), [`shutdown`] turns SIGINT/SIGTERM into a cancelled token,
//! [`atomic_file`] writes files by tmp + fsync + rename,
//! [`emulator`] a stateful OX SOAP emulator for tests, benchmarks and [`demo`], `workload`
//! synthetic change streams for the benchmarks and the reliability suite (only with the
//! `test-support` feature, which the tests and benchmarks turn on: not in the product); [`locks`] locks a
//! mutex another task may have poisoned; [`data_lock`] keeps one daemon per data directory.
//! [`commands`] sits on top: the CLI commands that talk to a running daemon through
//! `admin::client`, one module each (`queue`, `reconcile`, `state import`, `subscriptions`, and
//! `trigger`, the App Center's `listener_trigger`); no daemon-side module imports it.
//!
//! No two top-level modules import each other, directly or in a circle (checked by the
//! `architecture` integration test).

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod apply;
pub mod atomic_file;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data_lock;
pub mod demo;
pub mod dispatch;
pub mod done;
pub mod emulator;
pub mod listener;
pub mod locks;
pub mod message;
pub mod ops;
pub mod ox;
pub mod provision;
pub mod queue;
pub mod shutdown;
pub mod status;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod workload;
