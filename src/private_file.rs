//! Files that hold secrets: signing keys, TLS keys, the admin token, the store.
//!
//! Owns how such files and their directories are created so that only the owner can
//! read them (0600 files, 0700 directories on Unix; the platform default elsewhere).
//! Every caller that writes key material or the store goes through here, so the rule
//! lives in one place (docs/threat-model.md). A leaf: it imports nothing from tollgate.
//!
//! The mode is applied when a file is created; an existing file keeps its permissions
//! (an operator who chose them knows why).

use std::io::Write;
use std::path::Path;

/// Who may read a file written by [`write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Key material and tokens: owner only (0600 on Unix).
    Owner,
    /// Public material (certificates, public keys): the process's default mode.
    Public,
}

/// Write `bytes` to `path` (replacing its content), creating missing parent
/// directories, and flush it to disk before returning.
pub fn write(path: &Path, bytes: &[u8], access: Access) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if access == Access::Owner {
        owner_only(&mut opts);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Write a secret: [`write`] with [`Access::Owner`].
pub fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write(path, bytes, Access::Owner)
}

/// Create `path` empty and owner-only when it does not exist; an existing file is left
/// as it is (not truncated). SQLite gives its `-wal` and `-shm` files the permissions of
/// the database file, which is why the store creates it first through here.
pub fn create(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    owner_only(&mut opts);
    opts.open(path).map(drop)
}

/// Create `dir` and its missing parents; the directories made are owner-only (0700).
pub fn create_dirs(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

#[cfg(unix)]
fn owner_only(opts: &mut std::fs::OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    opts.mode(0o600);
}

#[cfg(not(unix))]
fn owner_only(_opts: &mut std::fs::OpenOptions) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn write_creates_parents_replaces_content_and_returns_after_the_bytes_are_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/key.pem");
        write(&path, b"first, longer", Access::Public).expect("write");
        write(&path, b"second", Access::Public).expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
    }

    #[cfg(unix)]
    #[test]
    fn secrets_and_created_files_are_owner_only_and_create_keeps_an_existing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("k/secret");
        write_secret(&secret, b"s").expect("write");
        assert_eq!(mode(&secret), 0o600);
        let path = dir.path().join("db");
        create(&path).expect("create");
        assert_eq!(mode(&path), 0o600);
        std::fs::write(&path, b"content").expect("fill");
        create(&path).expect("create again");
        assert_eq!(std::fs::read(&path).expect("read"), b"content");
    }

    #[cfg(unix)]
    #[test]
    fn create_dirs_makes_owner_only_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x/y");
        create_dirs(&path).expect("create");
        assert_eq!(mode(&path), 0o700);
        assert_eq!(mode(&dir.path().join("x")), 0o700);
    }
}
