//! Integration tests: one test binary (faster to build), a real nats-server per test.

#![allow(clippy::unwrap_used)] // Test helpers too: a panic is the failure report.

mod admin;
mod admin_experience;
mod appcenter_files;
mod architecture;
mod bad_input;
mod cluster;
mod concurrency;
mod consume;
mod daemon_binary;
mod differential;
mod disk_full;
mod dispatch;
mod docs_outputs;
mod host_loop;
mod host_loop_ox;
mod hostile_ox;
mod ops;
mod ox_rules;
mod pipeline;
mod reliability;
mod scenarios;
mod scope_keys;
mod state_store;
mod support;
mod trigger;
mod ucs_consistency;
mod ucs_join;
mod ucs_schema;
mod ucs_udm;
