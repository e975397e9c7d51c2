//! TLS for the edge and the admin listener: rustls server configuration, SNI
//! certificate choice, and the development CA the quick start makes on first run.
//!
//! Owns certificates and keys read from PEM (`rustls-pki-types`); never sees HTTP or
//! tokens. TLS 1.2 and 1.3 only, ALPN `h2` then `http/1.1` (docs/threat-model.md, C6),
//! aws-lc-rs as the one crypto provider. Each TLS listener (edge, admin) has its own
//! server config, built once over its own [`CertStore`], which a reload swaps whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config;
use crate::private_file::{self, Access};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {what}")]
    Pem { path: PathBuf, what: String },
    #[error("{path}: no certificate in the file")]
    NoCertificate { path: PathBuf },
    #[error("{path}: the key does not fit the certificate or is not supported: {what}")]
    Key { path: PathBuf, what: String },
    #[error("no certificates configured")]
    Empty,
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot make the development certificate: {0}")]
    Generate(String),
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The process's one crypto provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Picks a certificate by SNI: exact name, then `*.parent` wildcard, then the default.
#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        if let Some(k) = self.by_name.get(&name) {
            return Some(k.clone());
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.by_name.get(&format!("*.{parent}")) {
                return Some(k.clone());
            }
        }
        Some(self.default.clone())
    }
}

fn load_certified_key(
    c: &config::Cert,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let pem_err = |path: &Path, e: rustls_pki_types::pem::Error| TlsError::Pem {
        path: path.to_path_buf(),
        what: e.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(&c.cert)
        .map_err(|e| pem_err(&c.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(&c.cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: c.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&c.key).map_err(|e| pem_err(&c.key, e))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: c.key.clone(),
            what: e.to_string(),
        })?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| TlsError::Key {
        path: c.key.clone(),
        what: e.to_string(),
    })?;
    Ok(ck)
}

/// A validated set of certificates: what [`CertStore`] serves.
#[derive(Debug)]
pub struct CertSet(SniResolver);

impl CertSet {
    /// Read and check every configured certificate and key (the key must fit its
    /// certificate). Nothing is served from a set that failed to load.
    pub fn load(certs: &[config::Cert]) -> Result<CertSet, TlsError> {
        let provider = provider();
        let mut by_name = HashMap::new();
        let mut default = None;
        for c in certs {
            let ck = Arc::new(load_certified_key(c, &provider)?);
            for n in &c.server_names {
                by_name
                    .entry(n.to_ascii_lowercase())
                    .or_insert_with(|| ck.clone());
            }
            default.get_or_insert(ck);
        }
        let default = default.ok_or(TlsError::Empty)?;
        Ok(CertSet(SniResolver { by_name, default }))
    }
}

/// The certificates the edge serves, swapped whole on reload. Handshakes in progress
/// keep the set they started with; the next handshake sees the new one, and open
/// connections are not touched.
#[derive(Debug)]
pub struct CertStore(ArcSwap<CertSet>);

impl CertStore {
    pub fn new(set: CertSet) -> Self {
        CertStore(ArcSwap::from_pointee(set))
    }

    pub fn replace(&self, set: CertSet) {
        self.0.store(Arc::new(set));
    }

    fn current(&self) -> Arc<CertSet> {
        self.0.load_full()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current().0.resolve(hello)
    }
}

/// Build the edge's server configuration over a certificate store.
pub fn server_config_for(store: Arc<CertStore>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Build the edge's server configuration from the configured certificates.
pub fn server_config(certs: &[config::Cert]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config_for(Arc::new(CertStore::new(CertSet::load(certs)?)))
}

/// Where the development CA is written: `ca.pem` beside the certificate.
pub fn dev_ca_path(cert: &config::Cert) -> PathBuf {
    cert.cert.with_file_name("ca.pem")
}

/// Make a development CA and a certificate signed by it at `cert`'s paths, unless both
/// files exist. Returns true when it made them. The CA's private key is not kept: the
/// CA can sign nothing else, and `ca.pem` is the one file a client must trust.
pub fn ensure_dev_cert(cert: &config::Cert) -> Result<bool, TlsError> {
    if cert.cert.exists() && cert.key.exists() {
        return Ok(false);
    }
    let gen = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tollgate development CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_key = rcgen::KeyPair::generate().map_err(gen)?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(gen)?;

    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for n in &cert.server_names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(gen)?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "tollgate development certificate",
    );
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().map_err(gen)?;
    let leaf = params.signed_by(&key, &ca).map_err(gen)?;

    let write = |path: &Path, text: String, access| -> Result<(), TlsError> {
        private_file::write(path, text.as_bytes(), access).map_err(|error| TlsError::Write {
            path: path.to_path_buf(),
            error,
        })
    };
    write(&dev_ca_path(cert), ca.pem(), Access::Public)?;
    // The chain served: leaf, then the CA (clients that trust ca.pem need only the leaf,
    // but sending the chain is what a real deployment does).
    write(
        &cert.cert,
        format!("{}{}", leaf.pem(), ca.pem()),
        Access::Public,
    )?;
    write(&cert.key, key.serialize_pem(), Access::Owner)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_dev_certificate_loads_into_a_server_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = config::Cert {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            server_names: vec!["media.test".into()],
        };
        assert!(ensure_dev_cert(&c).expect("generate"));
        assert!(!ensure_dev_cert(&c).expect("second call keeps the files"));
        assert!(dev_ca_path(&c).exists());
        let cfg = server_config(&[c]).expect("loads");
        assert_eq!(
            cfg.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = config::Cert {
            cert: dir.path().join("a/cert.pem"),
            key: dir.path().join("a/key.pem"),
            server_names: vec![],
        };
        let b = config::Cert {
            cert: dir.path().join("b/cert.pem"),
            key: dir.path().join("b/key.pem"),
            server_names: vec![],
        };
        ensure_dev_cert(&a).expect("a");
        ensure_dev_cert(&b).expect("b");
        let mixed = config::Cert {
            cert: a.cert.clone(),
            key: b.key.clone(),
            server_names: vec![],
        };
        assert!(matches!(server_config(&[mixed]), Err(TlsError::Key { .. })));
    }
}
