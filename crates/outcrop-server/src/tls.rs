//! TLS for the listeners: a certificate and key from PEM files (reloaded on SIGHUP), or a
//! development CA and server certificate made under the data directory.

use anyhow::Context;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// PEM files: the certificate chain (leaf first) and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// A CA kept under `<data_dir>/tls/` (made once) and a server certificate it signs for
    /// `localhost`, the loopback addresses, the listen address and this host's name.
    SelfSigned,
}

/// The serving certificate, swapped in place when the files are reloaded.
#[derive(Debug)]
pub struct Certificates {
    source: Source,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .map(|c| c.clone())
                .unwrap_or_else(|e| e.into_inner().clone()),
        )
    }
}

impl Certificates {
    /// Loads the certificate (making the development one first if asked for).
    pub fn load(source: Source, data_dir: &Path, names: &[String]) -> anyhow::Result<Arc<Self>> {
        let source = match source {
            Source::SelfSigned => {
                let dir = data_dir.join("tls");
                let (cert, key) = self_signed(&dir, names)?;
                tracing::info!(
                    "TLS with a development certificate; clients trust it with AWS_CA_BUNDLE={}",
                    dir.join("ca.pem").display()
                );
                Source::Files { cert, key }
            }
            files => files,
        };
        let key = certified_key(&source)?;
        Ok(Arc::new(Certificates {
            source,
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again; on an error the certificate in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let key = certified_key(&self.source)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// An acceptor that offers HTTP/2 and HTTP/1.1 (ALPN) with this certificate.
    pub fn acceptor(self: &Arc<Self>) -> anyhow::Result<TlsAcceptor> {
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

fn certified_key(source: &Source) -> anyhow::Result<CertifiedKey> {
    let Source::Files { cert, key } = source else {
        unreachable!("self-signed certificates are written to files first")
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", cert.display());
    }
    let der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS private key {}", key.display()))?;
    let signing = aws_lc_rs::sign::any_supported_type(&der)
        .with_context(|| format!("{} is not a usable private key", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .with_context(|| format!("{} does not belong to {}", key.display(), cert.display()))?;
    Ok(certified)
}

/// Makes (or reuses) the development CA and issues a fresh server certificate from it.
/// Returns the server certificate and key paths.
fn self_signed(dir: &Path, names: &[String]) -> anyhow::Result<(PathBuf, PathBuf)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (ca_pem, ca_key_pem) = (dir.join("ca.pem"), dir.join("ca.key"));
    let now = time::OffsetDateTime::now_utc();
    // The CA's subject and key are all a certificate it issues refers to, so the issuer is
    // rebuilt from the same parameters and the kept key.
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "Outcrop development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    if !ca_pem.is_file() || !ca_key_pem.is_file() {
        let key = KeyPair::generate()?;
        let mut params = ca.clone();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key)?;
        write_private(&ca_key_pem, key.serialize_pem().as_bytes())?;
        std::fs::write(&ca_pem, cert.pem())?;
    }
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(&ca_key_pem)?)
        .with_context(|| format!("reading {}", ca_key_pem.display()))?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Outcrop development server");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365);
    let cert = params.signed_by(&key, &issuer)?;
    let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server.key"));
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem() + &std::fs::read_to_string(&ca_pem)?)?;
    Ok((cert_path, key_path))
}

/// Writes a file (a private key) readable by its owner only, and syncs it.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// The names a development certificate is issued for, given the listen addresses.
pub fn development_names(listen: &[std::net::SocketAddr]) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for addr in listen {
        if !addr.ip().is_unspecified() {
            names.push(addr.ip().to_string());
        }
    }
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            names.push(host.to_owned());
        }
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_ca_is_made_once_and_the_server_certificate_loads() {
        let dir = tempfile::tempdir().unwrap();
        let names = development_names(&["127.0.0.1:4680".parse().unwrap()]);
        let certs = Certificates::load(Source::SelfSigned, dir.path(), &names).unwrap();
        let ca = std::fs::read(dir.path().join("tls/ca.pem")).unwrap();
        certs.acceptor().unwrap();
        // A restart keeps the CA clients were told to trust.
        Certificates::load(Source::SelfSigned, dir.path(), &names).unwrap();
        assert_eq!(std::fs::read(dir.path().join("tls/ca.pem")).unwrap(), ca);
        certs.reload().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("tls/ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_key_that_does_not_match_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let names = development_names(&[]);
        Certificates::load(Source::SelfSigned, dir.path(), &names).unwrap();
        let tls = dir.path().join("tls");
        let err = Certificates::load(
            Source::Files {
                cert: tls.join("server.pem"),
                key: tls.join("ca.key"),
            },
            dir.path(),
            &names,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("does not belong"), "{err:#}");
        let err = Certificates::load(
            Source::Files {
                cert: tls.join("missing.pem"),
                key: tls.join("ca.key"),
            },
            dir.path(),
            &names,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("missing.pem"), "{err:#}");
    }
}
