//! ox-connector provisions Open-Xchange App Suite from a UCS directory.
//!
//! # Layout
//! The modules follow the data flow of one change, ① to ⑥:
//!
//! - [`listener`] ① listener files: format, sorted scan, watcher, quarantine of broken files.
//! - [`message`] ② the provisioning message made from a listener file; subject; message id.
//! - [`queue`] ③ JetStream: stream and consumer layout, publishing, the ordered consumer,
//!   the embedded `nats-server`.
//! - [`provision`] ④ applying messages to OX (behind the [`apply::Applier`] contract).
//! - [`ox`] ⑤ the OX SOAP client.
//! - [`done`] ⑥ the only code that deletes listener files.
//!
//! Around them: [`app`] wires the steps and stops them in order, [`cli`] and [`config`] read and
//! validate settings, [`admin`] is the HTTP API of a running daemon, [`status`] holds what an admin needs to see, [`telemetry`] the logs,
//! [`emulator`] a stateful OX SOAP emulator for tests, benchmarks and [`demo`], [`workload`]
//! synthetic change streams for the benchmarks and the reliability suite.

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod apply;
pub mod atomic_file;
pub mod cli;
pub mod config;
pub mod demo;
pub mod done;
pub mod emulator;
pub mod listener;
pub mod message;
pub mod ox;
pub mod provision;
pub mod queue;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod workload;
