//! Secret access keys at rest. SigV4 verification needs each secret in plain text, so they
//! cannot be hashed; they are sealed with ChaCha20-Poly1305 under a key kept in a separate
//! file (mode 0600) beside the database. A copy of the database alone reveals no secret.

use crate::StoreError;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use outcrop_sigv4::SecretKey;
use std::io::Write;
use std::path::Path;

/// Marks a sealed value in the `secret_access_key` column (older rows hold plain text).
const SEALED: &str = "sealed1:";

/// Seals and opens secrets with the data directory's key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl SecretBox {
    /// Reads the key file, creating it (32 random bytes, mode 0600) when it does not exist.
    pub fn open_or_create(path: &Path) -> Result<Self, StoreError> {
        let key_error = |e: std::io::Error| StoreError::KeyFile(format!("{}: {e}", path.display()));
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = ChaCha20Poly1305::generate_key(&mut OsRng);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(key_error)?;
                file.write_all(&key).map_err(key_error)?;
                file.sync_all().map_err(key_error)?;
                tracing::info!(path = %path.display(), "created the key that seals secret access keys");
                key.to_vec()
            }
            Err(e) => return Err(key_error(e)),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(key_error)?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the secret key file is readable by others; chmod 600 it");
            }
        }
        if bytes.len() != 32 {
            return Err(StoreError::KeyFile(format!(
                "{}: expected 32 bytes, found {}",
                path.display(),
                bytes.len()
            )));
        }
        Ok(SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
        })
    }

    /// A sealing key given as 64 hex digits (`OUTCROP_SEALING_KEY`).
    pub fn from_hex(hex_key: &str) -> Result<Self, StoreError> {
        let bytes = hex::decode(hex_key.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                StoreError::KeyFile(
                    "the sealing key must be 32 bytes written as 64 hex digits (make one with `openssl rand -hex 32`)".into(),
                )
            })?;
        Ok(SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
        })
    }

    /// The stored form of `secret`, bound to its access key id.
    pub fn seal(&self, access_key_id: &str, secret: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: access_key_id.as_bytes(),
                },
            )
            .expect("encryption of a short secret cannot fail");
        format!("{SEALED}{}{}", hex::encode(nonce), hex::encode(sealed))
    }

    /// Whether a stored value is still plain text (written before sealing existed).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED)
    }

    /// The secret from its stored form.
    pub fn open(&self, access_key_id: &str, stored: &str) -> Result<SecretKey, StoreError> {
        let Some(sealed) = stored.strip_prefix(SEALED) else {
            return Ok(SecretKey::new(stored.to_owned()));
        };
        let bad = || {
            StoreError::KeyFile(format!(
                "the secret of {access_key_id} cannot be opened with this data directory's key"
            ))
        };
        let bytes = hex::decode(sealed).map_err(|_| bad())?;
        if bytes.len() < 12 {
            return Err(bad());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: access_key_id.as_bytes(),
                },
            )
            .map_err(|_| bad())?;
        Ok(SecretKey::new(String::from_utf8(plain).map_err(|_| bad())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_the_key_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let b = SecretBox::open_or_create(&path).unwrap();
        let stored = b.seal("AKIAX", "wJalrXUtnFEMI");
        assert!(!stored.contains("wJalrXUtnFEMI") && SecretBox::is_sealed(&stored));
        assert_eq!(b.open("AKIAX", &stored).unwrap().expose(), "wJalrXUtnFEMI");
        assert!(b.open("AKIAY", &stored).is_err(), "bound to its key id");
        // The same file gives the same key; another key cannot open it.
        let again = SecretBox::open_or_create(&path).unwrap();
        assert_eq!(
            again.open("AKIAX", &stored).unwrap().expose(),
            "wJalrXUtnFEMI"
        );
        let other = SecretBox::open_or_create(&dir.path().join("other.key")).unwrap();
        assert!(other.open("AKIAX", &stored).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Legacy plain text still reads.
        assert_eq!(b.open("AKIAX", "plain").unwrap().expose(), "plain");
    }
}
