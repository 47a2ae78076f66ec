//! ① Listener files: the queue the UCS App Center's converter fills.
//!
//! One JSON file per changed LDAP object, named `%Y-%m-%d-%H-%M-%S-%f.json` in host local time,
//! appearing atomically by rename (docs/queue.md §1). This module owns the file format
//! (ListenerUDMVersion 1 strings and version 2 typed values alike), the sorted directory scan,
//! the watcher that turns file-system events into rescans, and the quarantine of broken files.
//! It never deletes a listener file: that is `done`'s job alone.

pub mod batch;
mod format;
pub mod quarantine;
pub mod requeue;
pub mod scan;
pub mod watch;
pub mod write;

pub(crate) use format::read_bounded;
pub use format::{ListenerFile, ListenerFileError, MAX_FILE_BYTES};
pub use scan::{is_listener_file_name, scan, ListenerFileName};
