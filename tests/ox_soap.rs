//! Integration tests of the OX SOAP client and the OX emulator (one test binary).
//!
//! - `examples`: every file of `shared/ox-soap/examples` (copied to `tests/fixtures/ox-soap/`)
//!   sent to the emulator gets the documented answer, and every answer file parses in the client;
//! - `round_trips`: client ↔ emulator for every operation, faults, special characters and
//!   credentials in the wrong place;
//! - `rules`: OX's business rules at OX's defaults and with their properties switched;
//! - `mail_addresses`: OX's check of a user's e-mail addresses on create and change;
//! - `connect`: connection errors carry their cause (DNS, TLS, refused);
//! - `wire`: what the emulator accepts and rejects on the wire, WSDL, control endpoints, fault
//!   injection, the `ox-emulator` command.

#![allow(clippy::unwrap_used)] // Test helpers too: a panic is the failure report.

#[path = "ox_soap/connect.rs"]
mod connect;
#[path = "ox_soap/examples.rs"]
mod examples;
#[path = "ox_soap/mail_addresses.rs"]
mod mail_addresses;
#[path = "ox_soap/round_trips.rs"]
mod round_trips;
#[path = "ox_soap/rules.rs"]
mod rules;
#[path = "ox_soap/support.rs"]
mod support;
#[path = "ox_soap/wire.rs"]
mod wire;
