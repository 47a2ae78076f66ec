//! Integration tests: one test binary (faster to build), a real nats-server per test.

mod admin;
mod bad_input;
mod daemon_binary;
mod disk_full;
mod hostile_ox;
mod pipeline;
mod reliability;
mod scenarios;
mod support;
