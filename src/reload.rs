//! The reload handle: what SIGHUP and `POST /v1/reload` use to ask the running gate to
//! read its configuration file, keys and certificates again, and the report of what a
//! reload put in force.
//!
//! Owns only the request channel and the report type. The loop that performs reloads
//! lives in `app` (it builds the reloadable state); the admin listener holds a
//! [`Reloader`]. This module imports neither, so `admin` never depends on `app`
//! (docs/architecture.md, "Module rules").

use tokio::sync::{mpsc, oneshot};

/// What a reload put in force.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    pub generation: u64,
    /// Key ids that verify, and the one that signs.
    pub kids: Vec<String>,
    pub active_kid: Option<String>,
    pub certificates: usize,
    pub routes: usize,
    pub origins: usize,
    /// Settings that changed in the file but take effect only after a restart.
    pub restart_needed: Vec<&'static str>,
}

/// Why a reload kept the running state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReloadError {
    pub message: String,
    /// The new state could not be read from the store (it is unreachable): nothing was
    /// wrong with the files, and the same reload may succeed later (`POST /v1/reload`
    /// answers 503 with `Retry-After`, not 422).
    pub store_unavailable: bool,
}

impl ReloadError {
    /// The store could not be read; `message` says what failed.
    pub fn store(message: impl std::fmt::Display) -> Self {
        ReloadError {
            message: format!("store: {message}"),
            store_unavailable: true,
        }
    }
}

/// A refusal: a broken file, key or certificate, or a gate that cannot reload.
impl From<String> for ReloadError {
    fn from(message: String) -> Self {
        ReloadError {
            message,
            store_unavailable: false,
        }
    }
}

/// Where one reload's outcome is sent: the report, or why the running state was kept.
pub type ReloadReply = oneshot::Sender<Result<ReloadReport, ReloadError>>;

/// Asks the running gate to reload its configuration file, keys and certificates (what
/// SIGHUP and `POST /v1/reload` do). Reloads run one at a time.
#[derive(Clone)]
pub struct Reloader(mpsc::Sender<ReloadReply>);

/// The receiving end of [`Reloader`]s: one request per reload, served in order.
pub type ReloadRequests = mpsc::Receiver<ReloadReply>;

impl Reloader {
    /// A handle and the queue its requests arrive on; up to `queued` requests wait while
    /// one reload runs.
    pub fn channel(queued: usize) -> (Reloader, ReloadRequests) {
        let (tx, rx) = mpsc::channel(queued);
        (Reloader(tx), rx)
    }

    /// Reload, and say what is now in force — or why the running state was kept.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(tx)
            .await
            .map_err(|_| ReloadError::from("the gate is shutting down".to_string()))?;
        rx.await
            .map_err(|_| ReloadError::from("the reload was abandoned".to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(generation: u64) -> ReloadReport {
        ReloadReport {
            generation,
            kids: vec!["k1".into()],
            active_kid: Some("k1".into()),
            certificates: 0,
            routes: 1,
            origins: 1,
            restart_needed: vec![],
        }
    }

    #[tokio::test]
    async fn a_reload_returns_what_the_serving_side_answered() {
        let (reloader, mut requests) = Reloader::channel(1);
        let server = tokio::spawn(async move {
            let reply = requests.recv().await.expect("a request");
            let _ = reply.send(Ok(report(7)));
        });
        let got = reloader.reload().await.expect("reloaded");
        assert_eq!(got.generation, 7);
        server.await.expect("server task");
    }

    #[tokio::test]
    async fn a_reload_after_the_gate_stopped_says_so() {
        let (reloader, requests) = Reloader::channel(1);
        drop(requests);
        let err = reloader.reload().await.expect_err("no gate");
        assert!(err.message.contains("shutting down"), "{err}");
    }

    #[tokio::test]
    async fn a_dropped_reply_is_an_abandoned_reload() {
        let (reloader, mut requests) = Reloader::channel(1);
        let server = tokio::spawn(async move {
            drop(requests.recv().await);
        });
        let err = reloader.reload().await.expect_err("abandoned");
        assert!(err.message.contains("abandoned"), "{err}");
        server.await.expect("server task");
    }
}
