//! Integration tests: one test binary (faster to build), a real nats-server per test.

mod admin;
mod daemon_binary;
mod ops;
mod pipeline;
mod scenarios;
mod support;
