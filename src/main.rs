//! The `tollgate` command: parse the CLI, set up logging, run.
//!
//! Thin by design: it parses the command line, sets up logging, builds the runtime and
//! wires signals; every subcommand is a few calls into the library. A bad
//! configuration prints one clear message and exits non-zero before any socket is bound.

/// jemalloc, not glibc malloc: every idle keep-alive connection has buffers it barely
/// touches, and jemalloc keeps the untouched pages out of RSS (21.6 KiB -> 14.4 KiB per
/// idle connection, measured with benches/load). It does not hand freed pages back
/// within seconds: RSS stays at its peak after connections close. Built without the
/// default `jemalloc` feature, the binary uses glibc malloc, which heaptrack can count
/// (benches/alloc-per-request.py).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tollgate::admin::manage::{
    NewApiToken, NewOrg, NewProject, NewResource, NewRevocation, NewUser, OpError, Ops,
};
use tollgate::admin::mint::{self, MintOptions};
use tollgate::config::Config;
use tollgate::logging::{AccessDest, AccessFormat};
use tollgate::token::{KeySet, Scope};

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "A token gatekeeper for media delivery"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gate: edge listeners and the admin listener.
    Serve(ServeArgs),
    /// Work with tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Work with signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Validate a configuration file (and the keys and certificates it names) and exit.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Organisations (BlendVision organisation = Azure account = movingimage VideoManager).
    Org(Manage<OrgCommand>),
    /// Projects of an organisation.
    Project(Manage<ProjectCommand>),
    /// Resources (live and VOD) the edge serves.
    Resource(Manage<ResourceCommand>),
    /// Users who log in through the movingimage API.
    User(Manage<UserCommand>),
    /// API tokens for the BlendVision and Azure APIs (scoped to one organisation).
    ApiToken(Manage<ApiTokenCommand>),
    /// Revoke tokens by jti, subject, organisation or refresh family; or list revocations.
    Revoke(Manage<RevokeCommand>),
    /// The store as a whole.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy everything a SQLite store holds into a new, empty store (a PostgreSQL
    /// database for a fleet). Stop the gates using the SQLite file first. A target that
    /// is not empty is refused; a copy that stops half-way is recovered by emptying the
    /// target (drop and recreate the database) and copying again.
    Copy(CopyArgs),
}

#[derive(Args)]
struct CopyArgs {
    /// The SQLite file to copy (only read).
    #[arg(long)]
    from: PathBuf,
    /// The target: `postgres://user@host:port/db?sslmode=require`, or a new SQLite file.
    #[arg(long)]
    to: String,
    /// A file whose first line is the target database's password (default: PGPASSWORD).
    #[arg(long)]
    to_password_file: Option<String>,
    /// PEM certificates to verify the target database's TLS certificate against
    /// (default: the system's roots).
    #[arg(long)]
    to_ca_file: Option<String>,
}

/// A management subcommand on the store the config names.
#[derive(Args)]
struct Manage<C: Subcommand> {
    /// The configuration file (its `[store]` is used: the SQLite file or the PostgreSQL database).
    #[arg(long, short, default_value = "config/tollgate.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: C,
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Add or rename an organisation.
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Bind the Azure account to this subscription (with --azure-resource-group).
        #[arg(long)]
        azure_subscription: Option<String>,
        /// Bind the Azure account to this resource group (with --azure-subscription).
        #[arg(long)]
        azure_resource_group: Option<String>,
    },
    List,
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
enum ProjectCommand {
    /// Add a project to an organisation.
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: Option<String>,
    },
    List,
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
enum ResourceCommand {
    /// Add or replace a resource.
    Add {
        #[arg(long)]
        id: String,
        /// live, vod, live_event, live_event_recording, vod_event, audio_event, vod_encoding
        #[arg(long = "type")]
        resource_type: String,
        #[arg(long)]
        org: String,
        #[arg(long)]
        project: Option<String>,
        /// `token` (default) or `public`.
        #[arg(long, default_value = "token")]
        privacy: String,
        /// Not yet published: tokens only through the admin endpoint.
        #[arg(long)]
        unpublished: bool,
    },
    List,
    /// Delete a resource.
    Delete {
        #[arg(long = "type")]
        resource_type: String,
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input unless given.
    Add {
        #[arg(long)]
        username: String,
        /// Visible to other local users in the process list: prefer standard input.
        #[arg(long)]
        password: Option<String>,
        /// An organisation (VideoManager) the user may use; repeatable, first is the default.
        #[arg(long = "org")]
        orgs: Vec<String>,
    },
    List,
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
enum ApiTokenCommand {
    /// Create an API token for an organisation; it is printed once, only its hash is kept.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        label: Option<String>,
    },
    List,
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
enum RevokeCommand {
    /// Revoke one token by its `jti`.
    Jti {
        value: String,
        /// The token's end (Unix seconds): its `exp`, or its `sxp` when it has one.
        /// The revocation is then kept until this plus `token.leeway`; without it,
        /// for `token.max_lifetime` (plus the leeway), or for ever when that is unset.
        #[arg(long)]
        exp: Option<u64>,
    },
    /// Revoke every token of a subject (customer or user id).
    Subject { value: String },
    /// Revoke every token of an organisation.
    Org { value: String },
    /// Revoke a movingimage refresh family and its access tokens.
    Family { value: String },
    /// List revocations.
    List,
}

#[derive(Args)]
struct ServeArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "config/tollgate.toml")]
    config: PathBuf,
    /// Override `edge.tls_listen` (e.g. 127.0.0.1:0 for any free port).
    #[arg(long)]
    edge_tls_listen: Option<SocketAddr>,
    /// Override `edge.plain_listen`.
    #[arg(long)]
    edge_plain_listen: Option<SocketAddr>,
    /// Override `admin.listen`.
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Override `admin.tls_listen` (needs `[[admin.tls.certs]]` in the config).
    #[arg(long)]
    admin_tls_listen: Option<SocketAddr>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Sign a native token with the configured active key and print it.
    Mint(MintArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum ScopeArg {
    Resource,
    Project,
    Account,
}

#[derive(Args)]
struct MintArgs {
    /// The configuration file (its active key signs; its issuer goes in `iss`).
    #[arg(long, short, default_value = "config/tollgate.toml")]
    config: PathBuf,
    /// Resource id. With scope `project` or `account`, its project/org are used unless given.
    #[arg(long)]
    resource: Option<String>,
    /// Resource type (`vod`, `live`, …); default: the configured resource's, else `vod`.
    #[arg(long = "type")]
    resource_type: Option<String>,
    /// What the token covers.
    #[arg(long, value_enum, default_value = "resource")]
    scope: ScopeArg,
    /// Organisation id (scope account).
    #[arg(long)]
    org: Option<String>,
    /// Project id (scope project).
    #[arg(long)]
    project: Option<String>,
    /// Lifetime, e.g. `60s`, `1h`; `never` needs `token.allow_never_expiring`.
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// Subject (viewer or customer id).
    #[arg(long)]
    sub: Option<String>,
    /// Bind the token to a client address or CIDR.
    #[arg(long)]
    ip: Option<String>,
    /// Limit the token to path patterns (prefix, or `*` glob); repeatable.
    #[arg(long)]
    acl: Vec<String>,
    /// Session end for live renewal, as a lifetime from now (e.g. `4h`).
    #[arg(long)]
    session: Option<String>,
    /// An admin token: it also plays resources that are not published yet.
    #[arg(long)]
    admin: bool,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new Ed25519 key beside the active one, make it the active signing key in the
    /// config file (comments kept), and keep the old keys verifying until you remove them.
    /// Apply with SIGHUP or `POST /v1/reload`.
    Rotate {
        /// The configuration file to edit.
        #[arg(long, short, default_value = "config/tollgate.toml")]
        config: PathBuf,
        /// Key id for the new key; default `ed25519-<random>`.
        #[arg(long)]
        kid: Option<String>,
    },
    /// Make a new key pair (PKCS#8 private, SPKI public, PEM) and print its config entry.
    Generate {
        /// Key id; default `ed25519-<random>`.
        #[arg(long)]
        kid: Option<String>,
        /// `EdDSA` (Ed25519) or `ES256`.
        #[arg(long, default_value = "EdDSA")]
        alg: String,
        /// Directory to write `<kid>.pem` and `<kid>.pub.pem` into.
        #[arg(long, default_value = "data/keys")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sets logging up from its configuration (the access log's format and
    // destination); every other command logs to stderr only.
    let _logging = match cli.command {
        Command::Serve(_) => None,
        _ => tollgate::logging::init(AccessFormat::Off, AccessDest::Stderr).ok(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Token(TokenCommand::Mint(args)) => {
            let cfg = load(&args.config)?;
            tollgate::app::ensure_dev_material(&cfg)?;
            let (token, _) = mint::mint(&cfg, &mint_options(&args), tollgate::clock::now())?;
            println!("{token}");
            Ok(())
        }
        Command::Keys(KeysCommand::Generate { kid, alg, out }) => keys_generate(kid, &alg, &out),
        Command::Keys(KeysCommand::Rotate { config, kid }) => keys_rotate(&config, kid),
        Command::Org(m) => manage(&m.config, |ops| match m.command {
            OrgCommand::Add {
                id,
                name,
                azure_subscription,
                azure_resource_group,
            } => ops.add_org(NewOrg {
                id,
                name,
                azure_subscription,
                azure_resource_group,
            }),
            OrgCommand::List => ops.list("orgs"),
            OrgCommand::Delete { id } => ops.delete("orgs", &id),
        }),
        Command::Project(m) => manage(&m.config, |ops| match m.command {
            ProjectCommand::Add { id, org, name } => ops.add_project(NewProject { id, org, name }),
            ProjectCommand::List => ops.list("projects"),
            ProjectCommand::Delete { id } => ops.delete("projects", &id),
        }),
        Command::Resource(m) => manage(&m.config, |ops| match m.command {
            ResourceCommand::Add {
                id,
                resource_type,
                org,
                project,
                privacy,
                unpublished,
            } => ops.add_resource(NewResource {
                id,
                resource_type,
                org,
                project,
                privacy: Some(privacy),
                published: Some(!unpublished),
            }),
            ResourceCommand::List => ops.list("resources"),
            ResourceCommand::Delete { resource_type, id } => {
                ops.delete("resources", &format!("{resource_type}/{id}"))
            }
        }),
        Command::User(m) => {
            let command = match m.command {
                UserCommand::Add {
                    username,
                    password: None,
                    orgs,
                } => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the password")?;
                    UserCommand::Add {
                        username,
                        password: Some(line.trim_end_matches(['\r', '\n']).to_string()),
                        orgs,
                    }
                }
                other => other,
            };
            manage(&m.config, |ops| match command {
                UserCommand::Add {
                    username,
                    password,
                    orgs,
                } => ops.add_user(NewUser {
                    username,
                    password: password.unwrap_or_default(),
                    orgs,
                }),
                UserCommand::List => ops.list("users"),
                UserCommand::Delete { id } => ops.delete("users", &id),
            })
        }
        Command::ApiToken(m) => manage(&m.config, |ops| match m.command {
            ApiTokenCommand::Create { org, label } => ops.add_api_token(NewApiToken { org, label }),
            ApiTokenCommand::List => ops.list("api-tokens"),
            ApiTokenCommand::Delete { id } => ops.delete("api-tokens", &id),
        }),
        Command::Revoke(m) => manage(&m.config, |ops| {
            let (kind, value, exp) = match m.command {
                RevokeCommand::Jti { value, exp } => ("jti", value, exp),
                RevokeCommand::Subject { value } => ("subject", value, None),
                RevokeCommand::Org { value } => ("org", value, None),
                RevokeCommand::Family { value } => ("family", value, None),
                RevokeCommand::List => return ops.list("revocations"),
            };
            ops.revoke(NewRevocation {
                kind: kind.into(),
                value,
                exp,
            })
        }),
        Command::Store(StoreCommand::Copy(args)) => store_copy(&args),
        Command::CheckConfig { file } => {
            let cfg = load(&file)?;
            KeySet::load(&cfg.keys).context("keys")?;
            if cfg.edge.tls_listen.is_some() && !cfg.tls.dev_generate {
                tollgate::tls::server_config(&cfg.tls.certs).context("tls")?;
            }
            if cfg.admin_tls_listen.is_some() && !cfg.admin.tls.dev_generate {
                tollgate::tls::server_config(&cfg.admin.tls.certs).context("admin.tls")?;
            }
            println!(
                "{}: ok ({} routes, {} origins, {} keys, {} resources)",
                file.display(),
                cfg.routes.len(),
                cfg.origins.len(),
                cfg.keys.len(),
                cfg.resources.len()
            );
            Ok(())
        }
    }
}

/// Run one management operation on the config's store and print its JSON result.
fn manage(
    config: &Path,
    op: impl FnOnce(&Ops) -> std::result::Result<serde_json::Value, OpError>,
) -> Result<()> {
    let cfg = load(config)?;
    let store = tollgate::store::open(&cfg.store.location)
        .with_context(|| format!("opening the store {}", cfg.store.location.describe()))?;
    let ops = Ops::new(store, tollgate::admin::manage::jti_retention(&cfg));
    let value = op(&ops)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

/// `tollgate store copy`: open both stores, copy, print what was copied as JSON.
fn store_copy(args: &CopyArgs) -> Result<()> {
    // Opening a missing SQLite file would create an empty one and copy nothing.
    if !args.from.is_file() {
        anyhow::bail!("--from {}: no such SQLite file", args.from.display());
    }
    let from = tollgate::store::open(&tollgate::store::Location::Sqlite(args.from.clone()))
        .with_context(|| format!("opening the source store {}", args.from.display()))?;
    let location = tollgate::config::store_location(
        &args.to,
        args.to_password_file.as_deref(),
        args.to_ca_file.as_deref(),
    )
    .context("--to")?;
    let to = tollgate::store::open(&location)
        .with_context(|| format!("opening the target store {}", location.describe()))?;
    let copied = tollgate::store::copy::copy(from.as_ref(), to.as_ref())
        .with_context(|| format!("copying into {}", location.describe()))?;
    println!("{}", serde_json::to_string_pretty(&copied)?);
    Ok(())
}

fn keys_rotate(config: &Path, kid: Option<String>) -> Result<()> {
    let key = tollgate::admin::keys::rotate(config, kid)?;
    println!("new active key {}; the old keys still verify until you remove them from {}. Apply with SIGHUP (kill -HUP <pid>) or POST /v1/reload on the admin listener.", key.kid, config.display());
    Ok(())
}

fn load(path: &Path) -> Result<Config> {
    Config::load(path).map_err(anyhow::Error::from)
}

fn serve(args: ServeArgs) -> Result<()> {
    let mut cfg = load(&args.config)?;
    if let Some(a) = args.edge_tls_listen {
        cfg.edge.tls_listen = Some(a);
    }
    if let Some(a) = args.edge_plain_listen {
        cfg.edge.plain_listen = Some(a);
    }
    if let Some(a) = args.admin_listen {
        cfg.admin_listen = Some(a);
    }
    if let Some(a) = args.admin_tls_listen {
        if cfg.admin.tls.certs.is_empty() {
            anyhow::bail!("--admin-tls-listen needs [[admin.tls.certs]] in the config");
        }
        cfg.admin_tls_listen = Some(a);
    }
    let _logging = tollgate::logging::init(cfg.log.access, cfg.log.access_to.clone())
        .context("setting up logging")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let gate = tollgate::app::Gate::start(&cfg).await?;
        if gate.dev_material.cert {
            tracing::info!(
                "made a development CA and certificate (trust the CA file printed below)"
            );
        }
        for kid in &gate.dev_material.keys {
            tracing::info!(kid, "made a development signing key");
        }
        let show = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "off".into());
        println!(
            "tollgate listening: edge-tls={} edge-plain={} admin={} admin-tls={} pid={}",
            show(gate.edge_tls),
            show(gate.edge_plain),
            show(gate.admin),
            show(gate.admin_tls),
            std::process::id()
        );
        print_playback(&cfg, &gate);
        let stop = gate.shutdown_token();
        let grace = cfg.edge.shutdown_grace;
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            tracing::info!(
                grace_secs = grace.as_secs(),
                "shutting down: no new connections, letting in-flight requests finish"
            );
            stop.cancel();
            // A second signal ends at once (an operator who does not want to wait).
            wait_for_stop_signal().await;
            tracing::warn!("second signal: exiting without waiting for in-flight requests");
            std::process::exit(1);
        });
        let reloader = gate.reloader();
        let stopping = gate.shutdown_token();
        tokio::spawn(async move {
            tokio::select! {
                _ = reload_on_sighup(reloader) => {}
                _ = stopping.cancelled() => {}
            }
        });
        gate.wait().await;
        tracing::info!("stopped");
        Ok::<(), anyhow::Error>(())
    })
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reload the configuration, keys and certificates on every SIGHUP, until shutdown
/// starts. The outcome is logged (and counted) by the gate's reload task.
async fn reload_on_sighup(reloader: tollgate::reload::Reloader) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload with POST /v1/reload");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            let _ = reloader.reload().await;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = reloader;
    }
}

/// Print ready-to-paste playback URLs for the first configured resource (the quick start).
fn print_playback(cfg: &Config, gate: &tollgate::app::Gate) {
    match tollgate::app::playback_urls(cfg, gate, tollgate::clock::now()) {
        Ok(lines) => {
            for (label, value) in lines {
                println!("{label}: {value}");
            }
        }
        Err(e) => tracing::warn!("no playback URL printed: {e}"),
    }
}

fn mint_options(a: &MintArgs) -> MintOptions {
    MintOptions {
        resource: a.resource.clone(),
        resource_type: a.resource_type.clone(),
        scope: match a.scope {
            ScopeArg::Resource => Scope::Resource,
            ScopeArg::Project => Scope::Project,
            ScopeArg::Account => Scope::Account,
        },
        org: a.org.clone(),
        project: a.project.clone(),
        ttl: a.ttl.clone(),
        sub: a.sub.clone(),
        ip: a.ip.clone(),
        acl: a.acl.clone(),
        session: a.session.clone(),
        admin: a.admin,
    }
}

fn keys_generate(kid: Option<String>, alg: &str, out: &Path) -> Result<()> {
    let key = tollgate::admin::keys::generate(kid, alg, out)?;
    println!("# add to the config (paths relative to the config file's directory):");
    println!("{}", key.config_entry());
    Ok(())
}
