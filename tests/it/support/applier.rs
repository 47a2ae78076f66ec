//! A test [`Applier`] that records what it applied and can be told to fail.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ox_connector::apply::{Applier, ApplyError, Outcome};
use ox_connector::message::ProvisioningMessage;

/// One call of the applier.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub file: String,
    /// Whether the listener file was still on disk when the change was applied.
    pub file_existed: bool,
    pub succeeded: bool,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    /// File name → how many more attempts fail (`u32::MAX`: until told otherwise).
    failures: HashMap<String, u32>,
    /// How many more attempts fail, whatever the file.
    fail_any: u32,
    delay: Duration,
}

/// Records every call; clones share the record.
#[derive(Clone)]
pub(crate) struct RecordingApplier {
    listener_dir: PathBuf,
    inner: Arc<Mutex<Inner>>,
}

impl RecordingApplier {
    pub(crate) fn new(listener_dir: PathBuf) -> Self {
        Self {
            listener_dir,
            inner: Arc::default(),
        }
    }

    /// The next `times` attempts at `file` fail.
    pub(crate) fn fail(&self, file: &str, times: u32) {
        self.inner
            .lock()
            .unwrap()
            .failures
            .insert(file.to_owned(), times);
    }

    /// The next `times` attempts fail, whatever file they are for.
    pub(crate) fn fail_next(&self, times: u32) {
        self.inner.lock().unwrap().fail_any = times;
    }

    /// Attempts at `file` succeed again.
    pub(crate) fn heal(&self, file: &str) {
        self.inner.lock().unwrap().failures.remove(file);
    }

    /// Every apply takes this long (to catch the daemon mid-queue).
    pub(crate) fn set_delay(&self, delay: Duration) {
        self.inner.lock().unwrap().delay = delay;
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// Files applied successfully, in order.
    pub(crate) fn applied(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.succeeded)
            .map(|c| c.file)
            .collect()
    }

    pub(crate) fn attempts_at(&self, file: &str) -> usize {
        self.calls().iter().filter(|c| c.file == file).count()
    }
}

impl Applier for RecordingApplier {
    async fn apply(&self, message: &ProvisioningMessage) -> Result<Outcome, ApplyError> {
        let delay = self.inner.lock().unwrap().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let file = message.source_file().unwrap_or_default().to_owned();
        let file_existed = self.listener_dir.join(&file).exists();
        let mut inner = self.inner.lock().unwrap();
        let fail_any = inner.fail_any > 0;
        inner.fail_any = inner.fail_any.saturating_sub(1);
        let fail = fail_any
            || match inner.failures.get_mut(&file) {
                Some(0) | None => false,
                Some(left) => {
                    if *left != u32::MAX {
                        *left -= 1;
                    }
                    true
                }
            };
        inner.calls.push(Call {
            file,
            file_existed,
            succeeded: !fail,
        });
        if fail {
            Err(ApplyError::transient("OX is not reachable (test)"))
        } else {
            Ok(Outcome::Applied)
        }
    }
}
