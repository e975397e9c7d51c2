//! Reloading: the task that serves [`Reloader`] requests one at a time, each reading the
//! configuration file, keys and certificates again and swapping the reloadable state
//! whole, and the list of settings only a restart applies.
//!
//! Owns the all-or-nothing rule: everything is loaded and built before anything is
//! swapped. Never binds a socket: listeners stay where they were bound at start.
//!
//! [`Reloader`]: crate::reload::Reloader

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{listen_of, refresh, Core, Listen, LiveCell};
use crate::config::{self, Config};
use crate::reload::{ReloadError, ReloadReport, ReloadRequests};
use crate::tls::{CertSet, CertStore};
use crate::token::KeySet;

/// Settings a reload cannot apply (they belong to sockets, files opened at start or the
/// cache's shape): named in the report and the log while they differ from what the
/// process started with.
fn restart_needed(old: &Config, file_listen: Option<Listen>, new: &Config) -> Vec<&'static str> {
    // `section.key` of every setting that only a restart applies, named as in the file.
    macro_rules! differs {
        ($($section:ident . $key:ident),* $(,)?) => {
            [$((
                old.$section.$key != new.$section.$key,
                concat!(stringify!($section), ".", stringify!($key)),
            )),*]
        };
    }
    let listen = file_listen.map(|was| (was, listen_of(new)));
    let listeners = [
        ("edge.tls_listen", 0),
        ("edge.plain_listen", 1),
        ("admin.listen", 2),
        ("admin.tls_listen", 3),
    ]
    .map(|(name, i)| (listen.is_some_and(|(was, now)| was[i] != now[i]), name));
    let settings = differs!(
        edge.header_timeout,
        edge.tls_handshake_timeout,
        edge.max_header_bytes,
        edge.max_headers,
        edge.max_connections,
        edge.h2_max_concurrent_streams,
        edge.shutdown_grace,
        store.location,
        store.poll,
        token.cache_capacity,
        token.cache_max_ttl,
    );
    let others = [
        (
            old.token.leeway != new.token.leeway,
            "token.leeway (verification cache)",
        ),
        (old.log != new.log, "log"),
        (
            // The cache is built once; only `enabled` (each route's default) reloads.
            config::Cache {
                enabled: new.cache.enabled,
                ..old.cache.clone()
            } != new.cache,
            "cache (its sizes and default TTLs; cache.enabled and the routes' switches reload)",
        ),
    ];
    listeners
        .into_iter()
        .chain(settings)
        .chain(others)
        .filter_map(|(changed, name)| changed.then_some(name))
        .collect()
}

/// The certificates a running TLS listener (`store`) is to serve from now on, loaded
/// and checked; None when that listener is off.
fn certificates(
    store: &Option<Arc<CertStore>>,
    certs: &[config::Cert],
    section: &str,
) -> Result<Option<CertSet>, String> {
    match store {
        Some(_) => CertSet::load(certs)
            .map(Some)
            .map_err(|e| format!("{section}: {e}")),
        None => Ok(None),
    }
}

/// Serve reload requests one at a time until shutdown.
pub(super) async fn reload_loop(
    core: Arc<Core>,
    live: Arc<LiveCell>,
    mut requests: ReloadRequests,
    shutdown: CancellationToken,
) {
    loop {
        let reply = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = requests.recv() => match r {
                Some(r) => r,
                None => return,
            },
        };
        let outcome = reload(&core, &live).await;
        core.metrics.reloaded(outcome.is_ok());
        match &outcome {
            Ok(r) => tracing::info!(
                generation = r.generation,
                active_kid = r.active_kid.as_deref().unwrap_or("none"),
                kids = ?r.kids,
                restart_needed = ?r.restart_needed,
                "configuration reloaded"
            ),
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; keeping the running configuration")
            }
        }
        let _ = reply.send(outcome);
    }
}

/// Read the configuration file again and apply it — all or nothing. Everything is
/// loaded and built before anything is swapped, so a broken file, key or certificate
/// leaves the running state exactly as it was.
async fn reload(core: &Core, live: &LiveCell) -> Result<ReloadReport, ReloadError> {
    let old = live.get();
    let source = old.config.source.clone();
    let file = tokio::task::spawn_blocking(move || Config::load(&source))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let restart = restart_needed(&core.started, core.file_listen, &file);
    // Listeners stay where they are bound (an override on the command line included).
    let mut cfg = file;
    cfg.edge.tls_listen = old.config.edge.tls_listen;
    cfg.edge.plain_listen = old.config.edge.plain_listen;
    cfg.admin_listen = old.config.admin_listen;
    cfg.admin_tls_listen = old.config.admin_tls_listen;
    let keys = KeySet::load(&cfg.keys).map_err(|e| format!("keys: {e}"))?;
    let certs = certificates(&core.certs, &cfg.tls.certs, "tls")?;
    let admin_certs = certificates(&core.admin_certs, &cfg.admin.tls.certs, "admin.tls")?;
    let next = core
        .build(&cfg, old.generation + 1)
        .map_err(|e| e.to_string())?;
    // Stored resources go into the new edge before it serves a request.
    let (store, edge, revocations) = (
        core.store.clone(),
        next.edge.clone(),
        core.revocations.clone(),
    );
    tokio::task::spawn_blocking(move || {
        refresh::sync_from_store(store.as_ref(), &edge, &revocations)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(ReloadError::store)?;

    let report = ReloadReport {
        generation: next.generation,
        kids: keys.kids().into_iter().map(str::to_string).collect(),
        active_kid: keys.signing().map(|k| k.kid.clone()),
        certificates: cfg.tls.certs.len(),
        routes: cfg.routes.len(),
        origins: cfg.origins.len(),
        restart_needed: restart,
    };
    core.verifier.reload(keys, &cfg.token);
    for (store, set) in [(&core.certs, certs), (&core.admin_certs, admin_certs)] {
        if let (Some(store), Some(set)) = (store, set) {
            store.replace(set);
        }
    }
    live.set(Arc::new(next));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config() -> Config {
        crate::config::example(|t| t)
    }

    #[test]
    fn an_unchanged_file_needs_no_restart() {
        let cfg = config();
        assert!(restart_needed(&cfg, Some(listen_of(&cfg)), &cfg).is_empty());
    }

    #[test]
    fn listeners_store_and_cache_shape_are_named_until_a_restart() {
        let old = config();
        let mut new = config();
        new.edge.plain_listen = "127.0.0.1:8081".parse().ok();
        new.admin_tls_listen = "127.0.0.1:9443".parse().ok();
        new.store.poll = Duration::from_secs(9);
        new.token.cache_capacity += 1;
        assert_eq!(
            restart_needed(&old, Some(listen_of(&old)), &new),
            vec![
                "edge.plain_listen",
                "admin.tls_listen",
                "store.poll",
                "token.cache_capacity"
            ]
        );
        // Without the file's listen addresses (a command-line override), they are not compared.
        assert_eq!(
            restart_needed(&old, None, &new),
            vec!["store.poll", "token.cache_capacity"]
        );
    }

    #[test]
    fn the_shield_cache_shape_needs_a_restart_but_its_switch_does_not() {
        let old = config();
        let mut new = config();
        new.cache.enabled = !old.cache.enabled;
        assert!(restart_needed(&old, None, &new).is_empty());
        new.cache.segment_ttl = Duration::from_secs(7);
        let named = restart_needed(&old, None, &new);
        assert_eq!(named.len(), 1);
        assert!(named[0].starts_with("cache "), "{named:?}");
    }
}
