//! The `file://` origin: serves regular files from one local directory tree, read-only.
//!
//! It owns everything between a gate-approved request path and the bytes on disk:
//! decoding the path's `%XX` escapes exactly once, serving only the file the path names
//! under the canonical root (no symlink below the root is followed, so no link can lead
//! into another resource's folder or out of the root), the representation headers (`Content-Type`,
//! `Content-Length`, `ETag`, `Last-Modified`, `Accept-Ranges`), conditional requests
//! (`If-None-Match`, `If-Modified-Since`, `If-Range`), single byte ranges, and streaming
//! the file in bounded chunks. It never touches tokens, query strings, caching policy or
//! any header beyond those; it never writes, lists a directory, or reveals a filesystem
//! path in a response.

use std::ffi::OsStr;
use std::io::{self, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{
    ACCEPT_RANGES, ALLOW, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, Take};

use crate::body::{self, Body, BoxError};

/// Largest chunk a file body yields; bounds per-response memory however large the file.
const CHUNK: usize = 64 * 1024;

/// `httpdate` panics on dates from year 10000 on, so later mtimes get no `Last-Modified`.
const MAX_HTTP_DATE_SECS: u64 = 253_402_300_800;

/// A read-only origin rooted at one canonical directory.
#[derive(Debug, Clone)]
pub struct FileOrigin {
    root: PathBuf,
}

impl FileOrigin {
    /// Fails if root does not exist or is not a directory.
    pub fn new(root: &Path) -> io::Result<Self> {
        // Canonicalise once here so every containment check compares like with like.
        let root = std::fs::canonicalize(root)?;
        if !std::fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "file origin root is not a directory",
            ));
        }
        Ok(Self { root })
    }

    /// Serve `path` (the request path, already normalised by the gate: starts with '/', no dot segments,
    /// may still contain %XX escapes of reserved or non-ASCII bytes, which this function decodes exactly once)
    /// relative to the root, e.g. root=/srv/media, path=/vod/demo/master.m3u8 → /srv/media/vod/demo/master.m3u8.
    pub async fn serve(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
        let head = if method == Method::GET {
            false
        } else if method == Method::HEAD {
            true
        } else {
            return method_not_allowed();
        };

        let Some(relative) = decode_path(path) else {
            return not_found(head);
        };
        let Some((file, len, modified)) = self.open(&relative).await else {
            return not_found(head);
        };
        let validators = Validators::new(len, modified);

        if validators.not_modified(headers) {
            let mut response = Response::new(body::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            validators.insert_into(response.headers_mut());
            return response;
        }

        let range = match headers.get(IF_RANGE) {
            // A stale If-Range means the client's partial copy is of another version:
            // it needs the whole new representation, not a slice of it.
            Some(if_range) if !validators.if_range_matches(if_range) => ByteRange::Full,
            _ => parse_range(headers, len),
        };
        let (status, start, count) = match range {
            ByteRange::Full => (StatusCode::OK, 0, len),
            ByteRange::Partial { start, end } => {
                (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
            }
            ByteRange::Unsatisfiable => return range_not_satisfiable(len),
        };

        let body = if head {
            body::empty()
        } else {
            match stream_body(file, start, count).await {
                Ok(body) => body,
                // Seeking a regular file only fails if it became unreadable under us.
                Err(_) => return not_found(head),
            }
        };

        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers_out = response.headers_mut();
        headers_out.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(content_type_for(&relative)),
        );
        headers_out.insert(CONTENT_LENGTH, HeaderValue::from(count));
        headers_out.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        validators.insert_into(headers_out);
        if status == StatusCode::PARTIAL_CONTENT {
            let end = start + count - 1;
            if let Ok(value) = HeaderValue::try_from(format!("bytes {start}-{end}/{len}")) {
                headers_out.insert(CONTENT_RANGE, value);
            }
        }
        response
    }

    /// Opens `relative` under the root, or `None` for anything that must look like a 404:
    /// missing, unreadable, not a regular file, or resolving outside the root.
    async fn open(&self, relative: &Path) -> Option<(File, u64, Option<SystemTime>)> {
        let lexical = self.root.join(relative);
        let canonical = tokio::fs::canonicalize(&lexical).await.ok()?;
        // No symlink below the root is followed: the resolved path must be the requested
        // one. A symlink anywhere on the path — out of the root, or out and back in to
        // another resource's folder — is a 404. (The root itself may be a symlink: it
        // was canonicalised once in `new`.)
        if canonical != lexical {
            return None;
        }
        // Checked before opening: opening a FIFO would block a worker until a writer appears.
        if !tokio::fs::metadata(&canonical).await.ok()?.is_file() {
            return None;
        }
        let file = File::open(&canonical).await.ok()?;
        // Re-read from the open handle so length and mtime describe what we will stream.
        let metadata = file.metadata().await.ok()?;
        if !metadata.is_file() {
            return None;
        }
        Some((file, metadata.len(), metadata.modified().ok()))
    }
}

/// Decodes the request path once and turns it into a relative path of plain components,
/// or `None` when any component could step outside (or sideways within) the root.
fn decode_path(path: &str) -> Option<PathBuf> {
    let rest = path.strip_prefix('/')?;
    // Decode before splitting so an escaped separator (`%2f`) or dot (`%2e`) is judged as
    // the filesystem will see it.
    let decoded = crate::url::percent_decode(rest.as_bytes(), false)?;
    let mut relative = PathBuf::new();
    for segment in decoded.split(|&byte| byte == b'/') {
        // Empty segments would make `a//b` and `a/b` the same file; the root itself and
        // trailing slashes name directories, which are never served anyway.
        if segment.is_empty()
            || segment == b"."
            || segment == b".."
            || segment.contains(&0)
            || segment.contains(&b'\\')
        {
            return None;
        }
        let segment = os_str(segment)?;
        // Guards against platform-specific prefixes (e.g. `C:` on Windows) that `push`
        // would treat as a new absolute path.
        let mut components = Path::new(segment).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(normal)), None) if normal == segment => relative.push(segment),
            _ => return None,
        }
    }
    Some(relative)
}

#[cfg(unix)]
fn os_str(bytes: &[u8]) -> Option<&OsStr> {
    // Unix filenames are bytes: a decoded non-UTF-8 name may still exist on disk.
    Some(std::os::unix::ffi::OsStrExt::from_bytes(bytes))
}

#[cfg(not(unix))]
fn os_str(bytes: &[u8]) -> Option<&OsStr> {
    std::str::from_utf8(bytes).ok().map(OsStr::new)
}

/// Content type from the requested name's extension.
fn content_type_for(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(OsStr::to_str)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match extension.as_str() {
        "m3u8" => "application/vnd.apple.mpegurl",
        "mpd" => "application/dash+xml",
        "ts" => "video/mp2t",
        "m4s" => "video/iso.segment",
        "mp4" | "m4v" => "video/mp4",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "mp3" => "audio/mpeg",
        "vtt" => "text/vtt",
        "webm" => "video/webm",
        "key" => "application/octet-stream",
        "json" => "application/json",
        "html" | "htm" => "text/html; charset=utf-8",
        "js" => "text/javascript",
        "css" => "text/css",
        "txt" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
}

/// The validators of one version of a file.
struct Validators {
    /// Strong, quoted: `"<len hex>-<mtime nanos hex>"`. Any rewrite that changes the size
    /// or the mtime changes it, which is as strong as metadata can be without hashing.
    etag: String,
    /// Whole seconds since the epoch, the precision HTTP dates carry.
    last_modified: Option<u64>,
}

impl Validators {
    fn new(len: u64, modified: Option<SystemTime>) -> Self {
        let since_epoch = modified.and_then(|time| time.duration_since(UNIX_EPOCH).ok());
        let nanos = since_epoch.map_or(0, |elapsed| elapsed.as_nanos());
        Self {
            etag: format!("\"{len:x}-{nanos:x}\""),
            last_modified: since_epoch
                .map(|elapsed| elapsed.as_secs())
                .filter(|&secs| secs < MAX_HTTP_DATE_SECS),
        }
    }

    fn last_modified_header(&self) -> Option<HeaderValue> {
        let secs = self.last_modified?;
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
        HeaderValue::try_from(date).ok()
    }

    fn insert_into(&self, headers: &mut HeaderMap) {
        if let Ok(etag) = HeaderValue::try_from(self.etag.as_str()) {
            headers.insert(ETAG, etag);
        }
        if let Some(last_modified) = self.last_modified_header() {
            headers.insert(LAST_MODIFIED, last_modified);
        }
    }

    /// RFC 9110 §13.2.2 order: `If-None-Match` decides when present, and only in its
    /// absence is `If-Modified-Since` consulted.
    fn not_modified(&self, headers: &HeaderMap) -> bool {
        let mut if_none_match = headers.get_all(IF_NONE_MATCH).iter().peekable();
        if if_none_match.peek().is_some() {
            return if_none_match.any(|value| {
                value
                    .to_str()
                    .is_ok_and(|list| list.trim() == "*" || etag_list_contains(list, &self.etag))
            });
        }
        let (Some(last_modified), Some(since)) = (
            self.last_modified,
            headers
                .get(IF_MODIFIED_SINCE)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| httpdate::parse_http_date(value).ok()),
        ) else {
            return false;
        };
        since
            .duration_since(UNIX_EPOCH)
            .is_ok_and(|since| last_modified <= since.as_secs())
    }

    /// `If-Range` needs a strong match (RFC 9110 §13.1.5): a weak tag never matches, and a
    /// date must equal `Last-Modified` exactly.
    fn if_range_matches(&self, value: &HeaderValue) -> bool {
        let Ok(value) = value.to_str() else {
            return false;
        };
        let value = value.trim();
        if value.starts_with('"') {
            return value == self.etag;
        }
        if value.starts_with("W/") {
            return false;
        }
        match (self.last_modified, httpdate::parse_http_date(value)) {
            (Some(last_modified), Ok(date)) => date
                .duration_since(UNIX_EPOCH)
                .is_ok_and(|date| date.as_secs() == last_modified),
            _ => false,
        }
    }
}

/// Weak comparison against a comma-separated entity-tag list. Tags are scanned quote to
/// quote because an opaque tag may itself contain commas.
fn etag_list_contains(list: &str, ours: &str) -> bool {
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        let tag = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(opaque_end) = tag
            .strip_prefix('"')
            .and_then(|inner| inner.find('"'))
            .map(|close| close + 2)
        else {
            // Malformed from here on: nothing further can be trusted to match.
            return false;
        };
        if &tag[..opaque_end] == ours {
            return true;
        }
        rest = &tag[opaque_end..];
    }
}

/// What the `Range` header asks of a file of known length.
#[derive(Debug, PartialEq, Eq)]
enum ByteRange {
    /// No usable range: send everything with 200.
    Full,
    /// Inclusive byte positions, already clamped to the file.
    Partial { start: u64, end: u64 },
    /// Syntactically fine but entirely outside the file: 416.
    Unsatisfiable,
}

/// Only a single range is honoured; several ranges or a malformed header fall back to the
/// full file, which RFC 9110 §14.2 allows and which keeps multipart bodies out of scope.
fn parse_range(headers: &HeaderMap, len: u64) -> ByteRange {
    let mut values = headers.get_all(RANGE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return ByteRange::Full;
    };
    let Some((unit, set)) = value.to_str().ok().and_then(|value| value.split_once('=')) else {
        return ByteRange::Full;
    };
    let set = set.trim();
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return ByteRange::Full;
    }
    let Some((first, last)) = set.split_once('-') else {
        return ByteRange::Full;
    };
    match (first, last) {
        ("", suffix) => match digits(suffix) {
            None => ByteRange::Full,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if len == 0 => ByteRange::Unsatisfiable,
            Some(suffix) => ByteRange::Partial {
                start: len.saturating_sub(suffix),
                end: len - 1,
            },
        },
        (first, last) => {
            let Some(start) = digits(first) else {
                return ByteRange::Full;
            };
            let end = if last.is_empty() {
                u64::MAX
            } else {
                match digits(last) {
                    Some(end) if end >= start => end,
                    // `b < a` makes the whole header invalid, not unsatisfiable.
                    _ => return ByteRange::Full,
                }
            };
            if start >= len {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Partial {
                    start,
                    end: end.min(len - 1),
                }
            }
        }
    }
}

/// A non-empty run of ASCII digits. Saturates rather than failing, since a position past
/// `u64::MAX` is simply past the end of any file.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |value, byte| {
        value
            .saturating_mul(10)
            .saturating_add(u64::from(byte - b'0'))
    }))
}

/// Streams `count` bytes of `file` starting at `start`.
async fn stream_body(mut file: File, start: u64, count: u64) -> io::Result<Body> {
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await?;
    }
    let body = FileBody {
        reader: file.take(count),
        buf: BytesMut::new(),
        remaining: count,
    };
    Ok(body.map_err(BoxError::from).boxed_unsync())
}

/// A file region as an `http_body::Body` of at most [`CHUNK`]-byte frames.
///
/// This is `StreamBody<ReaderStream>` written out by hand: that pairing needs the
/// `futures_core::Stream` trait to map chunks into frames, and tokio-util's
/// `poll_read_buf` (what `ReaderStream` itself calls) gives the same chunking without
/// adding a dependency.
struct FileBody {
    reader: Take<File>,
    buf: BytesMut,
    /// Bytes promised by `Content-Length` and not yet sent.
    remaining: u64,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        // Each frame takes the filled bytes away with `split`, so the buffer never
        // holds more than one chunk; the consumer decides how long frames live.
        this.buf.reserve(CHUNK);
        let mut limited = (&mut this.buf).limit(CHUNK);
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut this.reader), cx, &mut limited);
        match read {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => {
                this.remaining = 0;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(Ok(0)) => {
                // The file shrank after its length went out in `Content-Length`; failing
                // the body makes the server abort the response instead of sending a
                // short one that a cache could store as complete.
                this.remaining = 0;
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being served",
                ))))
            }
            Poll::Ready(Ok(read)) => {
                this.remaining = this.remaining.saturating_sub(read as u64);
                Poll::Ready(Some(Ok(Frame::data(this.buf.split().freeze()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

fn not_found(head: bool) -> Response<Body> {
    plain(StatusCode::NOT_FOUND, "not found\n", head)
}

fn method_not_allowed() -> Response<Body> {
    let mut response = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed\n",
        false,
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

fn range_not_satisfiable(len: u64) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(0u64));
    if let Ok(value) = HeaderValue::try_from(format!("bytes */{len}")) {
        headers.insert(CONTENT_RANGE, value);
    }
    response
}

/// A fixed plain-text answer; the text is static so no request data can leak into it.
fn plain(status: StatusCode, text: &'static str, head: bool) -> Response<Body> {
    let body = if head {
        body::empty()
    } else {
        body::full(text)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    const DIGITS: &[u8] = b"0123456789";

    fn origin_with(files: &[(&str, &[u8])]) -> (TempDir, FileOrigin) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, contents) in files {
            let path = dir.path().join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create parent");
            }
            std::fs::write(&path, contents).expect("write fixture");
        }
        let origin = FileOrigin::new(dir.path()).expect("origin");
        (dir, origin)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    async fn request(
        origin: &FileOrigin,
        method: Method,
        path: &str,
        pairs: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Bytes) {
        let response = origin.serve(&method, path, &headers(pairs)).await;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (parts.status, parts.headers, bytes)
    }

    async fn get(
        origin: &FileOrigin,
        path: &str,
        pairs: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Bytes) {
        request(origin, Method::GET, path, pairs).await
    }

    fn header(headers: &HeaderMap, name: http::header::HeaderName) -> &str {
        headers
            .get(name)
            .map(|value| value.to_str().expect("ascii header"))
            .unwrap_or("")
    }

    #[test]
    fn the_content_type_table_covers_media_and_defaults_to_octet_stream() {
        let cases = [
            ("a.m3u8", "application/vnd.apple.mpegurl"),
            ("a.M3U8", "application/vnd.apple.mpegurl"),
            ("a.mpd", "application/dash+xml"),
            ("a.ts", "video/mp2t"),
            ("a.m4s", "video/iso.segment"),
            ("a.mp4", "video/mp4"),
            ("a.m4v", "video/mp4"),
            ("a.m4a", "audio/mp4"),
            ("a.aac", "audio/aac"),
            ("a.mp3", "audio/mpeg"),
            ("a.vtt", "text/vtt"),
            ("a.webm", "video/webm"),
            ("a.key", "application/octet-stream"),
            ("a.json", "application/json"),
            ("a.html", "text/html; charset=utf-8"),
            ("a.js", "text/javascript"),
            ("a.css", "text/css"),
            ("a.txt", "text/plain; charset=utf-8"),
            ("a.png", "image/png"),
            ("a.jpg", "image/jpeg"),
            ("a.bin", "application/octet-stream"),
            ("noextension", "application/octet-stream"),
        ];
        for (name, expected) in cases {
            assert_eq!(content_type_for(Path::new(name)), expected, "{name}");
        }
    }

    #[tokio::test]
    async fn new_refuses_a_missing_root_and_a_root_that_is_a_file() {
        let (dir, _) = origin_with(&[("file.txt", b"x")]);
        assert!(FileOrigin::new(&dir.path().join("missing")).is_err());
        let error = FileOrigin::new(&dir.path().join("file.txt")).expect_err("file root");
        assert_eq!(error.kind(), io::ErrorKind::NotADirectory);
    }

    #[tokio::test]
    async fn root_is_the_canonical_directory() {
        let (dir, origin) = origin_with(&[]);
        let canonical = std::fs::canonicalize(dir.path()).expect("canonicalize");
        assert_eq!(origin.root, canonical);
    }

    #[tokio::test]
    async fn get_returns_the_whole_file_with_representation_headers() {
        let (_dir, origin) = origin_with(&[("vod/demo/master.m3u8", b"#EXTM3U\n")]);
        let (status, headers, body) = get(&origin, "/vod/demo/master.m3u8", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"#EXTM3U\n");
        assert_eq!(
            header(&headers, CONTENT_TYPE),
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(header(&headers, CONTENT_LENGTH), "8");
        assert_eq!(header(&headers, ACCEPT_RANGES), "bytes");
        assert!(httpdate::parse_http_date(header(&headers, LAST_MODIFIED)).is_ok());
        let etag = header(&headers, ETAG);
        let inner = etag
            .strip_prefix("\"8-")
            .and_then(|rest| rest.strip_suffix('"'))
            .expect("strong quoted etag starting with the hex length");
        assert!(!inner.is_empty() && inner.bytes().all(|byte| byte.is_ascii_hexdigit()));
    }

    #[tokio::test]
    async fn head_answers_the_get_headers_with_an_empty_body() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS)]);
        let (get_status, get_headers, _) = get(&origin, "/seg.ts", &[]).await;
        let (status, headers, body) = request(&origin, Method::HEAD, "/seg.ts", &[]).await;
        assert_eq!(status, get_status);
        assert_eq!(headers, get_headers);
        assert!(body.is_empty());

        let range = [("range", "bytes=2-4")];
        let (get_status, get_headers, _) = get(&origin, "/seg.ts", &range).await;
        let (status, headers, body) = request(&origin, Method::HEAD, "/seg.ts", &range).await;
        assert_eq!(
            (status, get_status),
            (StatusCode::PARTIAL_CONTENT, StatusCode::PARTIAL_CONTENT)
        );
        assert_eq!(headers, get_headers);
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn a_closed_range_returns_206_with_exactly_that_slice() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS)]);
        let (status, headers, body) = get(&origin, "/seg.ts", &[("range", "bytes=2-5")]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(&body[..], b"2345");
        assert_eq!(header(&headers, CONTENT_RANGE), "bytes 2-5/10");
        assert_eq!(header(&headers, CONTENT_LENGTH), "4");
        assert_eq!(header(&headers, CONTENT_TYPE), "video/mp2t");
    }

    #[tokio::test]
    async fn a_range_ending_past_the_file_is_clamped_to_the_last_byte() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS)]);
        let (status, headers, body) = get(&origin, "/seg.ts", &[("range", "bytes=7-999")]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(&body[..], b"789");
        assert_eq!(header(&headers, CONTENT_RANGE), "bytes 7-9/10");
    }

    #[tokio::test]
    async fn an_open_ended_range_returns_everything_from_its_start() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS)]);
        let (status, headers, body) = get(&origin, "/seg.ts", &[("range", "bytes=6-")]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(&body[..], b"6789");
        assert_eq!(header(&headers, CONTENT_RANGE), "bytes 6-9/10");
        assert_eq!(header(&headers, CONTENT_LENGTH), "4");
    }

    #[tokio::test]
    async fn a_suffix_range_returns_the_last_n_bytes() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS)]);
        let (status, headers, body) = get(&origin, "/seg.ts", &[("range", "bytes=-3")]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(&body[..], b"789");
        assert_eq!(header(&headers, CONTENT_RANGE), "bytes 7-9/10");
        assert_eq!(header(&headers, CONTENT_LENGTH), "3");
    }

    #[tokio::test]
    async fn a_suffix_longer_than_the_file_returns_the_whole_file_as_206() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS)]);
        let (status, headers, body) = get(&origin, "/seg.ts", &[("range", "bytes=-50")]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(&body[..], DIGITS);
        assert_eq!(header(&headers, CONTENT_RANGE), "bytes 0-9/10");
    }

    #[tokio::test]
    async fn a_range_starting_at_the_end_or_a_zero_suffix_is_416() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS), ("empty.ts", b"")]);
        for (path, range, total) in [
            ("/seg.ts", "bytes=10-", "10"),
            ("/seg.ts", "bytes=10-20", "10"),
            ("/seg.ts", "bytes=99999999999999999999999-", "10"),
            ("/seg.ts", "bytes=-0", "10"),
            ("/empty.ts", "bytes=0-", "0"),
            ("/empty.ts", "bytes=-5", "0"),
        ] {
            let (status, headers, body) = get(&origin, path, &[("range", range)]).await;
            assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{path} {range}");
            assert_eq!(header(&headers, CONTENT_RANGE), format!("bytes */{total}"));
            assert!(body.is_empty());
        }
    }

    #[tokio::test]
    async fn a_multi_range_request_is_answered_200_with_the_whole_file() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS)]);
        let (status, headers, body) = get(&origin, "/seg.ts", &[("range", "bytes=0-1,5-6")]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], DIGITS);
        assert!(headers.get(CONTENT_RANGE).is_none());
        assert_eq!(header(&headers, CONTENT_LENGTH), "10");
    }

    #[tokio::test]
    async fn a_malformed_range_is_ignored_and_answered_200() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS)]);
        for range in [
            "bytes=5-2",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes 0-1",
            "bytes=1",
            "bytes=+1-2",
        ] {
            let (status, headers, body) = get(&origin, "/seg.ts", &[("range", range)]).await;
            assert_eq!(status, StatusCode::OK, "{range}");
            assert_eq!(&body[..], DIGITS, "{range}");
            assert!(headers.get(CONTENT_RANGE).is_none(), "{range}");
        }
        // Two Range fields are as ambiguous as a multi-range value.
        let (status, _, _) = get(
            &origin,
            "/seg.ts",
            &[("range", "bytes=0-1"), ("range", "bytes=2-3")],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn if_none_match_with_the_current_etag_returns_304_with_validators_and_no_body() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS)]);
        let (_, first, _) = get(&origin, "/seg.ts", &[]).await;
        let etag = header(&first, ETAG).to_owned();
        let weak = format!("W/{etag}");
        let listed = format!("\"other\", \"with,comma\" , {etag}");
        for value in [etag.as_str(), weak.as_str(), listed.as_str(), "*"] {
            let (status, headers, body) =
                get(&origin, "/seg.ts", &[("if-none-match", value)]).await;
            assert_eq!(status, StatusCode::NOT_MODIFIED, "{value}");
            assert!(body.is_empty());
            assert_eq!(header(&headers, ETAG), etag);
            assert_eq!(
                header(&headers, LAST_MODIFIED),
                header(&first, LAST_MODIFIED)
            );
        }
    }

    #[tokio::test]
    async fn if_none_match_with_another_etag_wins_over_a_matching_if_modified_since() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS)]);
        let (_, first, _) = get(&origin, "/seg.ts", &[]).await;
        let last_modified = header(&first, LAST_MODIFIED).to_owned();
        let (status, _, body) = get(
            &origin,
            "/seg.ts",
            &[
                ("if-none-match", "\"stale\""),
                ("if-modified-since", &last_modified),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], DIGITS);
    }

    #[tokio::test]
    async fn if_modified_since_at_or_after_the_mtime_returns_304_and_before_it_200() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS)]);
        let (_, first, _) = get(&origin, "/seg.ts", &[]).await;
        let last_modified = header(&first, LAST_MODIFIED).to_owned();
        let (status, headers, body) =
            get(&origin, "/seg.ts", &[("if-modified-since", &last_modified)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        assert_eq!(header(&headers, ETAG), header(&first, ETAG));

        let (status, _, body) = get(
            &origin,
            "/seg.ts",
            &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], DIGITS);

        let (status, _, _) = get(&origin, "/seg.ts", &[("if-modified-since", "not a date")]).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn if_range_that_does_not_match_ignores_the_range() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS)]);
        let (_, first, _) = get(&origin, "/seg.ts", &[]).await;
        let etag = header(&first, ETAG).to_owned();
        let weak = format!("W/{etag}");
        for if_range in [
            "\"stale\"",
            weak.as_str(),
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "garbage",
        ] {
            let (status, headers, body) = get(
                &origin,
                "/seg.ts",
                &[("range", "bytes=0-1"), ("if-range", if_range)],
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{if_range}");
            assert_eq!(&body[..], DIGITS);
            assert!(headers.get(CONTENT_RANGE).is_none());
        }
    }

    #[tokio::test]
    async fn if_range_that_matches_by_etag_or_date_keeps_the_range() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS)]);
        let (_, first, _) = get(&origin, "/seg.ts", &[]).await;
        for if_range in [header(&first, ETAG), header(&first, LAST_MODIFIED)] {
            let (status, _, body) = get(
                &origin,
                "/seg.ts",
                &[("range", "bytes=0-1"), ("if-range", if_range)],
            )
            .await;
            assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{if_range}");
            assert_eq!(&body[..], b"01");
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_symlink_to_a_file_outside_the_root_is_404() {
        let outside = tempfile::tempdir().expect("outside");
        let secret = outside.path().join("secret.txt");
        std::fs::write(&secret, b"secret").expect("write secret");
        let (dir, origin) = origin_with(&[]);
        std::os::unix::fs::symlink(&secret, dir.path().join("leak.txt")).expect("symlink");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("outdir")).expect("symlink");

        for path in ["/leak.txt", "/outdir/secret.txt"] {
            let (status, _, body) = get(&origin, path, &[]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(!String::from_utf8_lossy(&body).contains("secret"));
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn no_symlink_below_the_root_is_followed_even_one_that_stays_inside() {
        let (dir, origin) = origin_with(&[("real/seg.ts", DIGITS)]);
        std::os::unix::fs::symlink(dir.path().join("real/seg.ts"), dir.path().join("alias.ts"))
            .expect("symlink");
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("dir"))
            .expect("symlink");
        let (status, _, _) = get(&origin, "/alias.ts", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = get(&origin, "/dir/seg.ts", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, body) = get(&origin, "/real/seg.ts", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], DIGITS);
    }

    #[tokio::test]
    async fn escaped_dot_segments_separators_nul_and_backslash_are_404() {
        // The root sits one level down so that `..` from it reaches a real file.
        let outer = tempfile::tempdir().expect("outer");
        std::fs::write(outer.path().join("sibling.txt"), b"secret").expect("write sibling");
        let root = outer.path().join("root");
        std::fs::create_dir_all(root.join("vod")).expect("mkdir");
        std::fs::write(root.join("vod/seg.ts"), DIGITS).expect("write seg");
        std::fs::write(root.join("secret.txt"), b"secret").expect("write secret");
        let origin = FileOrigin::new(&root).expect("origin");
        assert_eq!(get(&origin, "/vod/seg.ts", &[]).await.0, StatusCode::OK);

        for path in [
            "/%2e%2e/sibling.txt",
            "/vod/%2E%2E/secret.txt",
            "/vod/%2e%2e%2fsecret.txt",
            "/%2e/vod/seg.ts",
            "/vod/seg.ts%00",
            "/vod%5cseg.ts",
            "/vod//seg.ts",
            "/vod/seg.ts/",
            "/vod/seg%zz.ts",
            "/vod/seg.ts%2",
            "vod/seg.ts",
        ] {
            let (status, headers, body) = get(&origin, path, &[]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(&body[..], b"not found\n");
            assert_eq!(header(&headers, CONTENT_TYPE), "text/plain; charset=utf-8");
        }
    }

    #[tokio::test]
    async fn a_directory_is_404_and_never_listed() {
        let (_dir, origin) = origin_with(&[("vod/demo/seg.ts", DIGITS)]);
        for path in ["/", "/vod", "/vod/demo"] {
            let (status, _, body) = get(&origin, path, &[]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(&body[..], b"not found\n");
        }
    }

    #[tokio::test]
    async fn a_missing_file_is_404_without_echoing_any_path() {
        let (dir, origin) = origin_with(&[]);
        let (status, headers, body) = get(&origin, "/vod/nothing-here.ts", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("nothing-here"));
        assert!(!text.contains(&*dir.path().to_string_lossy()));
        assert_eq!(header(&headers, CONTENT_LENGTH), "10");

        let (status, _, body) = request(&origin, Method::HEAD, "/vod/nothing-here.ts", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn post_and_other_methods_are_405_with_allow_get_head() {
        let (_dir, origin) = origin_with(&[("seg.ts", DIGITS)]);
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            let (status, headers, _) = request(&origin, method.clone(), "/seg.ts", &[]).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(header(&headers, ALLOW), "GET, HEAD");
        }
    }

    #[tokio::test]
    async fn a_percent_encoded_filename_is_decoded_and_served() {
        let (_dir, origin) = origin_with(&[("a b.ts", DIGITS), ("caf\u{e9}.vtt", b"WEBVTT\n")]);
        let (status, headers, body) = get(&origin, "/a%20b.ts", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], DIGITS);
        assert_eq!(header(&headers, CONTENT_TYPE), "video/mp2t");

        let (status, _, body) = get(&origin, "/caf%C3%A9.vtt", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"WEBVTT\n");
    }

    #[tokio::test]
    async fn escapes_are_decoded_exactly_once() {
        let (_dir, origin) = origin_with(&[("a%20b.ts", DIGITS)]);
        // `%2520` decodes once to the literal `%20` on disk...
        let (status, _, body) = get(&origin, "/a%2520b.ts", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], DIGITS);
        // ...and `%20` names `a b.ts`, which does not exist.
        let (status, _, _) = get(&origin, "/a%20b.ts", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_body_fails_rather_than_ending_short_if_the_file_shrank() {
        let (dir, _origin) = origin_with(&[("seg.ts", DIGITS)]);
        let file = File::open(dir.path().join("seg.ts")).await.expect("open");
        // Promise more bytes than the file holds, as if it was truncated after the headers.
        let body = stream_body(file, 4, 20).await.expect("body");
        assert!(body.collect().await.is_err());
    }

    #[tokio::test]
    async fn a_one_gib_file_streams_in_bounded_chunks() {
        const GIB: u64 = 1 << 30;
        let (dir, origin) = origin_with(&[]);
        // Sparse, so the fixture costs no disk or time to create.
        let fixture = std::fs::File::create(dir.path().join("big.mp4")).expect("create");
        fixture.set_len(GIB).expect("set_len");
        drop(fixture);

        let response = origin
            .serve(&Method::GET, "/big.mp4", &HeaderMap::new())
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(response.headers(), CONTENT_LENGTH), GIB.to_string());
        let mut body = response.into_body();
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(GIB));

        let (mut total, mut largest) = (0u64, 0usize);
        while let Some(frame) = body.frame().await {
            let data = frame.expect("frame").into_data().expect("data frame");
            largest = largest.max(data.len());
            total += data.len() as u64;
        }
        assert_eq!(total, GIB);
        // Process RSS is shared with parallel tests, so memory is measured where the
        // gate runs alone: scripts/rss-1gib.sh. Here: never more than one chunk at a time.
        assert!(largest <= CHUNK, "largest frame {largest}");
    }
}
