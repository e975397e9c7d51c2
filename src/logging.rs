//! Logging: the global `tracing` subscriber and the access-log line format. This module owns
//! subscriber setup (what goes to stderr, with which filter, with or without colour) and how
//! an access event becomes one line of logfmt or JSON on a non-blocking writer; it knows
//! nothing about requests — the edge decides which fields an access event carries, this
//! module only writes them. Ordinary logs keep `tracing-subscriber`'s human-readable `fmt`
//! output on stderr, filtered by `RUST_LOG` (default `info`), coloured only when stderr is a
//! terminal (and `NO_COLOR` is unset or empty), so log files never collect escape codes.
//! Events with the target [`ACCESS_TARGET`] go only to the access layer, which is enabled at
//! INFO whatever `RUST_LOG`'s default says, unless `RUST_LOG` names `tollgate::access` itself.
//!
//! Format decision: the access lines are written by a small hand-written [`Layer`] whose
//! [`Visit`] formats both logfmt and JSON (strings through `serde_json`), because neither
//! ready-made formatter keeps the line rules. `tracing-subscriber`'s `json` formatter names
//! the keys `timestamp` and `message` (not `ts`, and the message cannot be dropped), and
//! without `flatten_event` nests the fields under `"fields"`; `tracing-logfmt` 0.3 always
//! writes `message=…`, leaves empty values unquoted (`reason=`), and writes DEL and the C1
//! controls raw and unquoted. The standard crates still do the rest: `tracing-subscriber`
//! for the registry, filters and the ordinary output, `tracing-appender`'s lossy
//! `non_blocking` writer so a slow disk or pipe drops access lines instead of stalling
//! requests, `time` for the timestamp. The event message (the edge's `"request"`) is dropped
//! in both formats: it is the same on every access line and carries nothing, and dropping it
//! keeps the two formats' keys identical.
//!
//! A line is `ts` (RFC 3339, UTC, microseconds) followed by the event's fields in the order
//! they were recorded; fields recorded as `None` are absent. Logfmt: `key=value` separated
//! by single spaces, a value quoted when it is empty or holds a space, `=`, `"`, `\`, other
//! whitespace or a control character; inside quotes `"` and `\` are escaped, `\n`, `\r`,
//! `\t` are written as such and other controls (and U+2028/U+2029) as `\uXXXX`, so a client
//! cannot split or colour a line. Quoting on `\` keeps the format unambiguous: outside
//! quotes every byte is literal, inside them `\` always starts an escape. JSON: one object
//! per line, numbers and booleans bare, everything else a string.

use std::fs::OpenOptions;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::registry::{LookupSpan, Registry};
use tracing_subscriber::util::SubscriberInitExt;

/// The target of access events (`tracing::info!(target: "tollgate::access", …)`).
pub const ACCESS_TARGET: &str = "tollgate::access";

/// How access lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessFormat {
    /// `ts=… method=GET route=vod status=200 …`
    Logfmt,
    /// `{"ts":"…","method":"GET","route":"vod","status":200,…}`
    Json,
    /// No access lines; access events are filtered out before any field is formatted.
    Off,
}

impl AccessFormat {
    /// `"logfmt"`, `"json"` or `"off"`; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "logfmt" => Some(Self::Logfmt),
            "json" => Some(Self::Json),
            "off" => Some(Self::Off),
            _ => None,
        }
    }
}

/// Where access lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessDest {
    Stderr,
    Stdout,
    /// Opened for append, created if missing.
    File(PathBuf),
}

/// Keeps the access log's writer thread running; dropping it flushes the queued lines.
#[derive(Debug)]
#[must_use = "dropping the guard stops the access log writer"]
pub struct Guard {
    _worker: Option<WorkerGuard>,
}

/// Install the global subscriber: ordinary logs to stderr (`RUST_LOG`, default `info`) and
/// access lines in `format` to `dest`. Fails if the access file cannot be opened or a
/// global subscriber is already set. Keep the returned [`Guard`] until the process ends.
pub fn init(format: AccessFormat, dest: AccessDest) -> io::Result<Guard> {
    let directives = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let (access, worker): (Box<dyn Layer<Registry> + Send + Sync>, _) = match format {
        // No writer thread, no file: the layer's filter refuses every access event anyway.
        AccessFormat::Off => (access_layer_with(format, io::sink, None).boxed(), None),
        AccessFormat::Logfmt | AccessFormat::Json => {
            let (writer, worker) = match dest {
                AccessDest::Stderr => tracing_appender::non_blocking(io::stderr()),
                AccessDest::Stdout => tracing_appender::non_blocking(io::stdout()),
                AccessDest::File(path) => {
                    let file = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(|e| {
                            io::Error::new(
                                e.kind(),
                                format!("opening the access log {}: {e}", path.display()),
                            )
                        })?;
                    tracing_appender::non_blocking(file)
                }
            };
            (
                access_layer_with(format, writer, directives.as_deref()).boxed(),
                Some(worker),
            )
        }
    };
    let ansi =
        io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::registry()
        .with(access)
        .with(ordinary_layer(directives.as_deref(), io::stderr, ansi))
        .try_init()
        .map_err(io::Error::other)?;
    Ok(Guard { _worker: worker })
}

/// The access layer alone, enabled for [`ACCESS_TARGET`] at INFO and above (nothing for
/// [`AccessFormat::Off`]), writing one line per event to `writer`.
pub fn access_layer<S, W>(format: AccessFormat, writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    access_layer_with(format, writer, None)
}

/// The access layer with its filter: `RUST_LOG` (`directives`) decides only if it names the
/// access target; otherwise access events are on at INFO.
fn access_layer_with<S, W>(
    format: AccessFormat,
    writer: W,
    directives: Option<&str>,
) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    let filter: Box<dyn Filter<S> + Send + Sync> = match directives {
        _ if format == AccessFormat::Off => Box::new(LevelFilter::OFF),
        Some(d) if mentions_access(d) => Box::new(
            env_filter(Some(d)).and(filter_fn(|meta: &Metadata<'_>| is_access(meta.target()))),
        ),
        _ => Box::new(
            filter_fn(|meta: &Metadata<'_>| {
                is_access(meta.target()) && *meta.level() <= Level::INFO
            })
            .with_max_level_hint(LevelFilter::INFO),
        ),
    };
    AccessLayer { format, writer }.with_filter(filter)
}

/// The human-readable log: every target but the access one, filtered by `directives`.
fn ordinary_layer<S, W>(directives: Option<&str>, writer: W, ansi: bool) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    let filter =
        env_filter(directives).and(filter_fn(|meta: &Metadata<'_>| !is_access(meta.target())));
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_filter(filter)
}

/// The filter when `RUST_LOG` is unset: `info`, except rustls, which warns once per
/// handshake about things a client controls (an IP address as SNI, say) — at `info`
/// any client could make the gate write a line per connection.
const DEFAULT_DIRECTIVES: &str = "info,rustls=error";

/// `RUST_LOG`'s filter, or [`DEFAULT_DIRECTIVES`] when it is unset or does not parse.
fn env_filter(directives: Option<&str>) -> EnvFilter {
    directives
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_DIRECTIVES))
}

/// Whether a directive of `RUST_LOG` names the access target (or a target below it).
fn mentions_access(directives: &str) -> bool {
    directives.split(',').any(|directive| {
        let target = directive
            .split(['[', '='])
            .next()
            .unwrap_or_default()
            .trim();
        is_access(target)
    })
}

fn is_access(target: &str) -> bool {
    target
        .strip_prefix(ACCESS_TARGET)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// Formats each event it is given as one line; its filter decides which events those are.
struct AccessLayer<W> {
    format: AccessFormat,
    writer: W,
}

impl<S, W> Layer<S> for AccessLayer<W>
where
    S: Subscriber,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if self.format == AccessFormat::Off {
            return;
        }
        // Log timestamps are not inputs to any decision, so reading the wall clock here (as
        // the fmt layer's own timer does) keeps the rule that decisions take their time
        // from `clock` (`docs/architecture.md`, "Module rules").
        let Some(line) = format_line(self.format, OffsetDateTime::now_utc(), event) else {
            return;
        };
        // One write per line, so the non-blocking writer queues whole lines. A failed write
        // is dropped: the access log must never fail or stall a request.
        let _ = self
            .writer
            .make_writer_for(event.metadata())
            .write_all(&line);
    }
}

/// `ts` with microseconds, always in UTC (`Z`): fixed width, so lines sort by time.
const TS_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
);

/// One access line, newline included; `None` if formatting failed (never seen in practice:
/// everything is written into memory).
fn format_line(format: AccessFormat, now: OffsetDateTime, event: &Event<'_>) -> Option<Vec<u8>> {
    let mut line = Line {
        format,
        out: Vec::with_capacity(256),
        scratch: String::new(),
        ok: true,
    };
    let ts = now.to_offset(time::UtcOffset::UTC).format(TS_FORMAT).ok()?;
    match format {
        AccessFormat::Json => line.out.push(b'{'),
        AccessFormat::Logfmt | AccessFormat::Off => {}
    }
    line.key("ts");
    line.string(&ts);
    event.record(&mut line);
    match format {
        AccessFormat::Json => line.out.extend_from_slice(b"}\n"),
        AccessFormat::Logfmt | AccessFormat::Off => line.out.push(b'\n'),
    }
    line.ok.then_some(line.out)
}

/// A line being built; each recorded field appends `key=value` or `"key":value`.
struct Line {
    format: AccessFormat,
    out: Vec<u8>,
    /// Reused for `Debug`/`Display` values, which must be escaped after formatting.
    scratch: String,
    ok: bool,
}

impl Line {
    fn key(&mut self, key: &str) {
        match self.format {
            AccessFormat::Json => {
                if self.out.len() > 1 {
                    self.out.push(b',');
                }
                self.json(key);
                self.out.push(b':');
            }
            AccessFormat::Logfmt | AccessFormat::Off => {
                if !self.out.is_empty() {
                    self.out.push(b' ');
                }
                // Field names come from the code, but a bad one must not break the line.
                let mut buf = [0; 4];
                for c in key.chars() {
                    let c = if logfmt_needs_quotes(c) { '_' } else { c };
                    self.out
                        .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                if key.is_empty() {
                    self.out.push(b'_');
                }
                self.out.push(b'=');
            }
        }
    }

    fn string(&mut self, value: &str) {
        match self.format {
            AccessFormat::Json => self.json(value),
            AccessFormat::Logfmt | AccessFormat::Off => logfmt_value(&mut self.out, value),
        }
    }

    /// A bare number or boolean (the same text in both formats).
    fn bare(&mut self, value: impl std::fmt::Display) {
        if write!(self.out, "{value}").is_err() {
            self.ok = false;
        }
    }

    fn json<T: serde::Serialize + ?Sized>(&mut self, value: &T) {
        if serde_json::to_writer(&mut self.out, value).is_err() {
            self.ok = false;
        }
    }
}

impl Visit for Line {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if skip(field) {
            return;
        }
        self.key(field.name());
        match self.format {
            // `null` for NaN and infinities, which JSON has no number for.
            AccessFormat::Json => self.json(&value),
            AccessFormat::Logfmt | AccessFormat::Off => self.bare(value),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !skip(field) {
            self.key(field.name());
            self.bare(value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !skip(field) {
            self.key(field.name());
            self.bare(value);
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        if !skip(field) {
            self.key(field.name());
            self.bare(value);
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        if !skip(field) {
            self.key(field.name());
            self.bare(value);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if !skip(field) {
            self.key(field.name());
            self.bare(value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if !skip(field) {
            self.key(field.name());
            self.string(value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    /// `Debug` values, and `Display` ones (`%x` is recorded as a `Debug` that displays).
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if skip(field) {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        if std::fmt::Write::write_fmt(&mut scratch, format_args!("{value:?}")).is_err() {
            self.ok = false;
        }
        self.key(field.name());
        self.string(&scratch);
        self.scratch = scratch;
    }
}

/// The message (`"request"` on every access line) carries nothing: not written.
fn skip(field: &Field) -> bool {
    field.name() == "message"
}

/// Characters that force a logfmt value into quotes.
fn logfmt_needs_quotes(c: char) -> bool {
    matches!(c, ' ' | '=' | '"' | '\\') || c.is_whitespace() || logfmt_escaped(c)
}

/// Characters never written raw: controls (C0, DEL, C1) and the Unicode line separators.
fn logfmt_escaped(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

fn logfmt_value(out: &mut Vec<u8>, value: &str) {
    if !value.is_empty() && !value.chars().any(logfmt_needs_quotes) {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    out.push(b'"');
    let mut buf = [0; 4];
    for c in value.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if logfmt_escaped(c) => {
                // Writing into a Vec cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

    use super::*;

    /// An in-memory `MakeWriter` the test reads back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("buffer lock").clone()).expect("utf-8 output")
        }
    }

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("buffer lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// Tests that install a subscriber run one at a time. `tracing` caches each callsite's
    /// interest process-wide, recomputed only against the subscribers alive when it is
    /// (re)built; with two tests' scoped subscribers overlapping, one can see the other's
    /// cached "never" and drop its event. In the server there is one global subscriber.
    fn one_subscriber_at_a_time() -> MutexGuard<'static, ()> {
        static LOCK: Mutex<()> = Mutex::new(());
        LOCK.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Capture what `format`'s access layer writes while `emit` runs.
    fn capture(format: AccessFormat, directives: Option<&str>, emit: impl FnOnce()) -> String {
        let _serial = one_subscriber_at_a_time();
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(access_layer_with(
            format,
            buffer.clone(),
            directives,
        ));
        tracing::subscriber::with_default(subscriber, emit);
        buffer.text()
    }

    /// An access event shaped like the edge's, with a hostile `reason`.
    fn access_event(reason: &str) {
        let client: Option<std::net::IpAddr> = None;
        tracing::info!(
            target: "tollgate::access",
            method = %"GET",
            route = "vod",
            status = 200u16,
            reason,
            manifest = "",
            bytes = 1234u64,
            micros = 56u64,
            client = client.map(tracing::field::display),
            complete = true,
            "request"
        );
    }

    /// Split one logfmt line into (key, value) pairs, undoing the quoting and escapes.
    fn parse_logfmt(line: &str) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        let mut chars = line.trim_end_matches('\n').chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some('r') => value.push('\r'),
                            Some('t') => value.push('\t'),
                            Some('u') => {
                                let hex: String = chars.by_ref().take(4).collect();
                                let code = u32::from_str_radix(&hex, 16).expect("hex escape");
                                value.push(char::from_u32(code).expect("a char"));
                            }
                            Some(other) => value.push(other),
                            None => panic!("dangling escape in {line:?}"),
                        },
                        c => value.push(c),
                    }
                }
                assert!(matches!(chars.next(), None | Some(' ')), "{line:?}");
            } else {
                value = chars.by_ref().take_while(|&c| c != ' ').collect();
            }
            pairs.push((key, value));
        }
        pairs
    }

    #[test]
    fn json_line_parses_with_typed_fields_in_order_and_no_ansi() {
        let out = capture(AccessFormat::Json, None, || access_event("ok"));
        println!("{out}");
        assert!(!out.contains('\x1b'), "{out:?}");
        assert_eq!(out.lines().count(), 1, "{out:?}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
        assert_eq!(v["route"], serde_json::json!("vod"));
        assert_eq!(v["status"], serde_json::json!(200));
        assert!(v["status"].is_u64() && v["bytes"].is_u64(), "{out}");
        assert_eq!(v["bytes"], serde_json::json!(1234));
        assert_eq!(v["complete"], serde_json::json!(true));
        assert_eq!(v["method"], serde_json::json!("GET"));
        assert!(v.get("client").is_none(), "None is absent: {out}");
        assert!(
            v.get("message").is_none() && v.get("msg").is_none(),
            "{out}"
        );
        let ts = v["ts"].as_str().expect("ts is a string");
        let parsed = OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
            .expect("ts is RFC 3339");
        assert_eq!(parsed.offset(), time::UtcOffset::UTC);
        let keys: Vec<&str> = v
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut in_line: Vec<(usize, &str)> = keys
            .iter()
            .map(|k| (out.find(&format!("\"{k}\":")).expect("key in line"), *k))
            .collect();
        in_line.sort();
        let order: Vec<&str> = in_line.into_iter().map(|(_, k)| k).collect();
        assert_eq!(
            order,
            [
                "ts", "method", "route", "status", "reason", "manifest", "bytes", "micros",
                "complete"
            ]
        );
    }

    #[test]
    fn logfmt_line_quotes_and_escapes_what_a_client_can_send() {
        let hostile = "bad \"token\"\nlevel=error \\ \x1b[31m\u{7f}\u{85}";
        let out = capture(AccessFormat::Logfmt, None, || access_event(hostile));
        println!("{out}");
        assert!(out.contains(" route=vod status=200 "), "{out:?}");
        assert!(out.starts_with("ts="), "{out:?}");
        assert_eq!(out.matches('\n').count(), 1, "one line: {out:?}");
        assert!(
            !out.trim_end_matches('\n').chars().any(char::is_control),
            "raw control character in {out:?}"
        );
        assert!(
            !out.contains("message") && !out.contains("request"),
            "{out:?}"
        );
        let pairs = parse_logfmt(&out);
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ts", "method", "route", "status", "reason", "manifest", "bytes", "micros",
                "complete"
            ]
        );
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .expect("key present")
                .1
                .as_str()
        };
        assert_eq!(get("reason"), hostile);
        assert_eq!(get("manifest"), "");
        assert!(
            out.contains(" manifest=\"\" "),
            "empty value is quoted: {out:?}"
        );
        assert_eq!(get("complete"), "true");
    }

    #[test]
    fn ordinary_event_does_not_reach_the_access_layer() {
        let out = capture(AccessFormat::Json, None, || {
            tracing::info!(target: "tollgate::edge", route = "vod", "listening");
            tracing::warn!(route = "vod", "something else");
            tracing::info!(target: "tollgate::accessible", route = "vod", "a lookalike");
        });
        assert_eq!(out, "");
    }

    #[test]
    fn off_writes_nothing_and_disables_the_event_before_formatting() {
        let out = capture(AccessFormat::Off, None, || {
            assert!(!tracing::enabled!(target: "tollgate::access", Level::INFO));
            access_event("ok");
        });
        assert_eq!(out, "");
    }

    #[test]
    fn access_is_on_at_info_unless_rust_log_names_it() {
        let quiet = capture(AccessFormat::Logfmt, Some("warn"), || access_event("ok"));
        assert!(quiet.contains("route=vod"), "{quiet:?}");
        let off = capture(
            AccessFormat::Logfmt,
            Some("info,tollgate::access=off"),
            || access_event("ok"),
        );
        assert_eq!(off, "");
        let debug = capture(AccessFormat::Logfmt, None, || {
            tracing::debug!(target: "tollgate::access", route = "vod", "request");
        });
        assert_eq!(debug, "", "DEBUG access events stay off by default");
    }

    #[test]
    fn rust_log_mentions_of_the_access_target_are_recognised() {
        assert!(mentions_access("info,tollgate::access=off"));
        assert!(mentions_access(" tollgate::access[span]=debug"));
        assert!(mentions_access("tollgate::access"));
        assert!(!mentions_access("tollgate=debug,tollgate::accessible=off"));
        assert!(!mentions_access("info"));
    }

    #[test]
    fn by_default_rustls_warnings_a_client_can_trigger_are_not_logged() {
        let _serial = one_subscriber_at_a_time();
        let buffer = Buffer::default();
        let subscriber = Registry::default().with(ordinary_layer(None, buffer.clone(), false));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "rustls::server::hs", "Illegal SNI extension: ignoring IP address");
            tracing::error!(target: "rustls::server::hs", "a real rustls error");
            tracing::info!(target: "tollgate::app", "configuration reloaded");
        });
        let out = buffer.text();
        assert!(!out.contains("Illegal SNI"), "{out}");
        assert!(out.contains("a real rustls error"), "{out}");
        assert!(out.contains("configuration reloaded"), "{out}");
    }

    #[test]
    fn ordinary_log_leaves_out_access_events_and_colour_when_told() {
        let _serial = one_subscriber_at_a_time();
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(ordinary_layer(
            Some("info"),
            buffer.clone(),
            false,
        ));
        tracing::subscriber::with_default(subscriber, || {
            access_event("ok");
            tracing::info!(target: "tollgate::edge", "listening");
        });
        let out = buffer.text();
        assert!(out.contains("listening"), "{out:?}");
        assert!(!out.contains("route"), "{out:?}");
        assert!(!out.contains('\x1b'), "{out:?}");
    }

    #[test]
    fn access_format_parse_accepts_the_three_names_and_refuses_others() {
        assert_eq!(AccessFormat::parse("logfmt"), Some(AccessFormat::Logfmt));
        assert_eq!(AccessFormat::parse("json"), Some(AccessFormat::Json));
        assert_eq!(AccessFormat::parse("off"), Some(AccessFormat::Off));
        for other in ["", "JSON", "text", "logfmt ", "none"] {
            assert_eq!(AccessFormat::parse(other), None, "{other:?}");
        }
    }
}
