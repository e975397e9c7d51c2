//! Signing-key operations for the operator: `tollgate keys generate` (a new key pair and
//! its config entry) and `tollgate keys rotate` (a new active key beside the old one,
//! written into the configuration file with its comments kept).
//!
//! Owns the edit of the `[[keys]]` tables and the choice of new key paths. Key material
//! itself comes from `token::keys`; the running gate picks a rotation up on reload
//! (docs/architecture.md, "Tokens"). Never touches the store or a listener.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};
use crate::token::keys::Algorithm;
use crate::token::keys::{self, KeyError};

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("--alg {0:?}: EdDSA or ES256")]
    Algorithm(String),
    #[error("no randomness for a key id")]
    Random,
    #[error("the config has no active signing key to rotate from")]
    NoActiveKey,
    #[error("the active key has no file to put the new key beside")]
    NoKeyDirectory,
    #[error("kid {0:?} is in the config already")]
    KidTaken(String),
    #[error("{0} exists already; not overwriting")]
    Exists(String),
    #[error("cannot read or write {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("parsing the config: {0}")]
    Toml(#[from] toml_edit::TomlError),
    #[error("the config has no [[keys]]")]
    NoKeysTable,
    #[error("the rotated config does not validate: {0}")]
    Rotated(ConfigError),
}

/// A key pair written by [`generate`] or [`rotate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub kid: String,
    pub alg: Algorithm,
    pub private: PathBuf,
    pub public: PathBuf,
}

impl NewKey {
    /// The `[[keys]]` entry for this key, paths as written.
    pub fn config_entry(&self) -> String {
        format!(
            "[[keys]]\nkid = \"{}\"\nalg = \"{}\"\npublic = \"{}\"\nprivate = \"{}\"",
            self.kid,
            self.alg.as_str(),
            self.public.display(),
            self.private.display()
        )
    }
}

/// Make a new key pair of `alg` in `out` as `<kid>.pem` and `<kid>.pub.pem`; the kid
/// defaults to `<alg>-<random>`. Existing files are never overwritten.
pub fn generate(kid: Option<String>, alg: &str, out: &Path) -> Result<NewKey, KeysError> {
    let alg = Algorithm::parse(alg).ok_or_else(|| KeysError::Algorithm(alg.to_string()))?;
    let kid = match kid {
        Some(k) => k,
        None => random_kid(&alg.as_str().to_ascii_lowercase())?,
    };
    let key = key_paths(kid, alg, out);
    if key.private.exists() || key.public.exists() {
        return Err(KeysError::Exists(format!(
            "{} or {}",
            key.private.display(),
            key.public.display()
        )));
    }
    write_key(&key)?;
    Ok(key)
}

/// Make a new Ed25519 key beside the active one and make it the active signing key in
/// the configuration file at `config` (comments kept); the old keys stay, verifying,
/// until the operator removes them. The edited file must validate.
pub fn rotate(config: &Path, kid: Option<String>) -> Result<NewKey, KeysError> {
    let cfg = Config::load(config)?;
    let dir = active_key_dir(&cfg)?;
    let kid = match kid {
        Some(k) => k,
        None => random_kid("ed25519")?,
    };
    if cfg.keys.iter().any(|k| k.kid == kid) {
        return Err(KeysError::KidTaken(kid));
    }
    let key = key_paths(kid, Algorithm::EdDsa, &dir);
    if key.private.exists() || key.public.exists() {
        return Err(KeysError::Exists(key.private.display().to_string()));
    }
    let text = std::fs::read_to_string(config).map_err(io(config))?;
    let edited = with_new_active_key(&text, &key, config.parent().unwrap_or(Path::new(".")))?;
    write_key(&key)?;
    std::fs::write(config, edited).map_err(io(config))?;
    Config::load(config).map_err(KeysError::Rotated)?;
    Ok(key)
}

/// The directory the active key's files are in: new keys go beside it.
fn active_key_dir(cfg: &Config) -> Result<PathBuf, KeysError> {
    let active = cfg.signing_key().ok_or(KeysError::NoActiveKey)?;
    active
        .private
        .as_deref()
        .or(active.public.as_deref())
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or(KeysError::NoKeyDirectory)
}

/// The configuration text with every key made inactive (and no longer dev-generated)
/// and `key` appended as the active one, its paths relative to `base` where they lie
/// below it (the config's own style).
fn with_new_active_key(text: &str, key: &NewKey, base: &Path) -> Result<String, KeysError> {
    let mut doc: toml_edit::DocumentMut = text.parse()?;
    let keys = doc
        .get_mut("keys")
        .and_then(|k| k.as_array_of_tables_mut())
        .ok_or(KeysError::NoKeysTable)?;
    for t in keys.iter_mut() {
        t.remove("active");
        t.remove("dev_generate");
    }
    let rel = |p: &Path| relative(p, base).unwrap_or_else(|| p.display().to_string());
    let mut t = toml_edit::Table::new();
    t["kid"] = toml_edit::value(key.kid.clone());
    t["alg"] = toml_edit::value(key.alg.as_str());
    t["public"] = toml_edit::value(rel(&key.public));
    t["private"] = toml_edit::value(rel(&key.private));
    t["active"] = toml_edit::value(true);
    keys.push(t);
    Ok(doc.to_string())
}

fn key_paths(kid: String, alg: Algorithm, dir: &Path) -> NewKey {
    NewKey {
        private: dir.join(format!("{kid}.pem")),
        public: dir.join(format!("{kid}.pub.pem")),
        kid,
        alg,
    }
}

fn write_key(key: &NewKey) -> Result<(), KeysError> {
    let pair = keys::generate_pem(key.alg)?;
    keys::write_pair(&key.private, &key.public, &pair)?;
    Ok(())
}

fn random_kid(prefix: &str) -> Result<String, KeysError> {
    let id = crate::token::issue::random_id().map_err(|_| KeysError::Random)?;
    Ok(format!("{prefix}-{}", &id[..8]))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> KeysError + '_ {
    move |error| KeysError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// `path` relative to `base` when it lies below it or at most eight levels above
/// (`../` steps); `None` when it cannot be made relative (or either does not exist).
pub fn relative(path: &Path, base: &Path) -> Option<String> {
    let base = std::fs::canonicalize(base).ok()?;
    let dir = std::fs::canonicalize(path.parent()?).ok()?;
    let name = path.file_name()?.to_string_lossy().into_owned();
    let mut up = base.clone();
    let mut prefix = String::new();
    for _ in 0..8 {
        if let Ok(rest) = dir.strip_prefix(&up) {
            let rest = rest.to_string_lossy();
            let joined = if rest.is_empty() {
                name
            } else {
                format!("{rest}/{name}")
            };
            return Some(format!("{prefix}{joined}"));
        }
        up = up.parent()?.to_path_buf();
        prefix.push_str("../");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkdir(p: &Path) {
        std::fs::create_dir_all(p).expect("mkdir");
    }

    #[test]
    fn relative_paths_below_beside_and_above_the_base() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        mkdir(&root.join("config"));
        mkdir(&root.join("config/keys"));
        mkdir(&root.join("data/keys"));
        let base = root.join("config");
        assert_eq!(
            relative(&base.join("keys/k.pem"), &base).as_deref(),
            Some("keys/k.pem")
        );
        assert_eq!(
            relative(&base.join("k.pem"), &base).as_deref(),
            Some("k.pem")
        );
        assert_eq!(
            relative(&root.join("data/keys/k.pem"), &base).as_deref(),
            Some("../data/keys/k.pem")
        );
        assert_eq!(relative(&root.join("missing/k.pem"), &base), None);
    }

    #[test]
    fn generate_writes_a_pair_names_it_and_never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = generate(Some("k1".into()), "EdDSA", dir.path()).expect("generate");
        assert_eq!(key.private, dir.path().join("k1.pem"));
        assert!(key.public.exists() && key.private.exists());
        assert!(key.config_entry().contains("kid = \"k1\"\nalg = \"EdDSA\""));
        assert!(matches!(
            generate(Some("k1".into()), "EdDSA", dir.path()),
            Err(KeysError::Exists(_))
        ));
        assert!(matches!(
            generate(None, "none", dir.path()),
            Err(KeysError::Algorithm(_))
        ));
        let random = generate(None, "ES256", dir.path()).expect("random kid");
        assert!(random.kid.starts_with("es256-"), "{}", random.kid);
        assert_eq!(random.kid.len(), "es256-".len() + 8);
    }

    const CONFIG: &str = r#"# the operator's comment
[edge]
tls_listen = ""
plain_listen = "127.0.0.1:0"

[store]
path = "state/tollgate.db"

[[keys]]
kid = "old"
alg = "EdDSA"
public = "keys/old.pub.pem"
private = "keys/old.pem"
active = true
dev_generate = true
"#;

    fn config_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tollgate.toml");
        std::fs::write(&path, CONFIG).expect("write config");
        let cfg = Config::load(&path).expect("valid config");
        keys::ensure_dev_keys(&cfg.keys).expect("old key");
        (dir, path)
    }

    #[test]
    fn rotate_adds_an_active_key_beside_the_old_one_and_keeps_comments() {
        let (dir, path) = config_dir();
        let key = rotate(&path, Some("new".into())).expect("rotate");
        assert_eq!(key.private, dir.path().join("keys/new.pem"));
        assert!(key.private.exists() && key.public.exists());
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# the operator's comment"), "{text}");
        assert!(!text.contains("dev_generate"), "{text}");
        assert!(text.contains("public = \"keys/new.pub.pem\""), "{text}");
        let cfg = Config::load(&path).expect("still valid");
        assert_eq!(cfg.signing_key().map(|k| k.kid.as_str()), Some("new"));
        assert!(cfg.keys.iter().any(|k| k.kid == "old" && !k.active));
    }

    #[test]
    fn rotate_refuses_a_kid_in_use_and_existing_files_and_changes_nothing() {
        let (dir, path) = config_dir();
        assert!(matches!(
            rotate(&path, Some("old".into())),
            Err(KeysError::KidTaken(_))
        ));
        std::fs::write(dir.path().join("keys/taken.pem"), "x").expect("squat");
        assert!(matches!(
            rotate(&path, Some("taken".into())),
            Err(KeysError::Exists(_))
        ));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), CONFIG);
    }

    #[test]
    fn rotate_without_a_kid_makes_a_random_ed25519_one() {
        let (_dir, path) = config_dir();
        let key = rotate(&path, None).expect("rotate");
        assert!(key.kid.starts_with("ed25519-"), "{}", key.kid);
        assert_eq!(key.alg, Algorithm::EdDsa);
    }
}
