//! ox-connector provisions Open-Xchange App Suite from a UCS directory.
//!
//! # Layout
//! The modules follow the data flow of one change:
//!
//! - `emulator`: a stateful OX SOAP emulator for tests, benchmarks and the demo.
//! - `ox`: ⑤ the OX SOAP client.

#![forbid(unsafe_code)]

pub mod cli;
pub mod emulator;
pub mod ox;
