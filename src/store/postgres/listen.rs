//! The change-feed listener of a [`PgStore`](super::PgStore): one dedicated connection
//! (not from the pool; `application_name` `tollgate-listen`) that `LISTEN`s on
//! [`feed::CHANNEL`] and wakes the subscriber.
//!
//! Order on start and on every reconnect: connect, `LISTEN`, then wake the subscriber
//! (which catches up from the last number it applied), then wake it again on every
//! notification. A notification sent while no connection listened is lost by
//! PostgreSQL; the catch-up after `LISTEN` is what finds its change, and because
//! `LISTEN` comes first, nothing committed after the catch-up's snapshot goes unnoticed.
//! Wake-ups coalesce (a [`Notify`] holds at most one): a burst costs one catch-up.
//! A lost connection is retried after [`Backoff`] (100 ms doubling to 5 s, spread), forever,
//! until the subscription is dropped; a failed attempt is reported in the
//! [`ListenerState`] (the first of a run also wakes the subscriber, to report it), a
//! successful `LISTEN` clears it. Runs on the store's own runtime; never touches the pool.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::feed::{self, Backoff, ListenerState};

/// How the listener connects: the store's settings with its own application name and
/// TCP keepalives (a silent peer is found within ~25 s; the poll catches up meanwhile).
#[derive(Clone)]
pub(super) struct Listen {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: MakeRustlsConnect,
    /// Connecting (TCP, TLS, start-up) and the `LISTEN` itself, each at most this long.
    pub(super) timeout: Duration,
}

impl Listen {
    pub(super) fn new(
        mut config: tokio_postgres::Config,
        tls: MakeRustlsConnect,
        timeout: Duration,
    ) -> Self {
        config
            .application_name("tollgate-listen")
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
        Self {
            config,
            tls,
            timeout,
        }
    }
}

/// Listen until dropped (the task is aborted with its [`feed::Subscription`]).
pub(super) async fn run(listen: Listen, wake: Arc<Notify>, state: Arc<ListenerState>) {
    let mut backoff = Backoff::new();
    loop {
        match session(&listen, &wake, &state).await {
            Ended::Lost(why) => {
                // A cut connection (a failover, pg_terminate_backend) is retried
                // quietly; only a failed attempt is a problem worth reporting.
                tracing::info!(error = %why, "store: the change-feed connection was lost; reconnecting");
                backoff = Backoff::new();
            }
            Ended::Failed(why) => {
                // Wake the subscriber to report it on the first failure only: later
                // attempts would add a failing catch-up (and its log lines) each time.
                if state.failed(why) {
                    wake.notify_one();
                }
            }
        }
        tokio::time::sleep(backoff.next_wait()).await;
    }
}

/// How one connection ended.
enum Ended {
    /// It listened, then was cut.
    Lost(String),
    /// It never got to listen.
    Failed(String),
}

/// One connection: connect, `LISTEN`, wake the subscriber, then relay notifications
/// until the connection ends.
async fn session(listen: &Listen, wake: &Notify, state: &ListenerState) -> Ended {
    let connecting = listen.config.connect(listen.tls.clone());
    let (client, mut connection) = match tokio::time::timeout(listen.timeout, connecting).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Ended::Failed(reason(&e)),
        Err(_) => return Ended::Failed("the database did not answer in time".into()),
    };
    // The connection's messages (notifications among them) arrive only while it is
    // polled: drive it alongside the LISTEN, then on its own.
    let relay = async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return reason(&e),
                None => return "the database closed the connection".to_owned(),
            }
        }
    };
    tokio::pin!(relay);
    let statement = format!("LISTEN {}", feed::CHANNEL);
    let listening = tokio::time::timeout(listen.timeout, client.batch_execute(&statement));
    tokio::select! {
        why = &mut relay => return Ended::Failed(why),
        done = listening => match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Ended::Failed(reason(&e)),
            Err(_) => return Ended::Failed("LISTEN did not answer in time".into()),
        },
    }
    state.listening();
    wake.notify_one();
    let why = relay.await;
    drop(client);
    Ended::Lost(why)
}

/// A driver error as a short reason (never the password: the driver does not print it).
fn reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    }
}
