//! Integration tests: one test binary (faster to build), a real nats-server per test.

mod admin;
mod appcenter_files;
mod daemon_binary;
mod dispatch;
mod host_loop;
mod host_loop_ox;
mod ops;
mod pipeline;
mod scenarios;
mod support;
mod trigger;
