//! Secret access keys at rest. SigV4 verification needs each secret in plain text, so they
//! cannot be hashed; they are sealed with ChaCha20-Poly1305 under a key kept in a separate
//! file (mode 0600) beside the database. A copy of the database alone reveals no secret.

use crate::StoreError;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use outcrop_sigv4::SecretKey;
use std::io::Write;
use std::path::Path;

/// Marks a value sealed by an unnamed key (written before keys had ids; older rows hold
/// plain text).
const SEALED_V1: &str = "sealed1:";
/// Marks a sealed value: `sealed2:{key id}:{nonce and ciphertext in hex}`.
const SEALED: &str = "sealed2:";

/// Seals with its current key and opens with any of its keys: the current one, then those
/// it replaces (while a rotation rolls out). Each key has an id, the first 8 hex digits of
/// its SHA-256, written beside what it sealed.
#[derive(Clone)]
pub struct SecretBox {
    keys: Vec<(String, ChaCha20Poly1305)>,
}

fn key_id(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))[..8].to_owned()
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
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        SecretBox {
            keys: vec![(key_id(bytes), ChaCha20Poly1305::new(Key::from_slice(bytes)))],
        }
    }

    /// A new random key, and its 64 hex digits.
    pub fn generate() -> (Self, String) {
        let key = ChaCha20Poly1305::generate_key(&mut OsRng);
        (Self::from_bytes(&key), hex::encode(key))
    }

    /// This box sealing with its own key and opening with `older`'s keys as well.
    pub fn replacing(mut self, older: &SecretBox) -> Self {
        for (id, cipher) in &older.keys {
            if !self.keys.iter().any(|(k, _)| k == id) {
                self.keys.push((id.clone(), cipher.clone()));
            }
        }
        self
    }

    /// The id of the key that seals.
    pub fn key_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Sealing keys given as 64 hex digits each (`OUTCROP_SEALING_KEY`), comma-separated:
    /// the first seals, the others only open (keys being rotated out).
    pub fn from_hex(hex_keys: &str) -> Result<Self, StoreError> {
        let mut boxes = hex_keys.split(',').map(|one| {
            hex::decode(one.trim())
                .ok()
                .filter(|b| b.len() == 32)
                .map(|b| Self::from_bytes(&b))
                .ok_or_else(|| {
                    StoreError::KeyFile(
                        "the sealing key must be 32 bytes written as 64 hex digits (make one with `openssl rand -hex 32`)".into(),
                    )
                })
        });
        let mut all = boxes.next().expect("split yields one item")?;
        for older in boxes {
            all = all.replacing(&older?);
        }
        Ok(all)
    }

    /// The stored form of `secret`, bound to its access key id.
    pub fn seal(&self, access_key_id: &str, secret: &str) -> String {
        let (id, cipher) = &self.keys[0];
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: access_key_id.as_bytes(),
                },
            )
            .expect("encryption of a short secret cannot fail");
        format!("{SEALED}{id}:{}{}", hex::encode(nonce), hex::encode(sealed))
    }

    /// Whether a stored value is sealed (not plain text written before sealing existed).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED) || stored.starts_with(SEALED_V1)
    }

    /// Whether a stored value is sealed by this box's current key (else it is re-sealed by a
    /// rotation).
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(SEALED)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.key_id())
    }

    /// The secret from its stored form.
    pub fn open(&self, access_key_id: &str, stored: &str) -> Result<SecretKey, StoreError> {
        let bad = || {
            StoreError::KeyFile(format!(
                "the secret of {access_key_id} cannot be opened with this server's sealing keys"
            ))
        };
        let (candidates, sealed): (Vec<&ChaCha20Poly1305>, &str) = if let Some(rest) =
            stored.strip_prefix(SEALED)
        {
            let (id, sealed) = rest.split_once(':').ok_or_else(bad)?;
            let key = self.keys.iter().find(|(k, _)| k == id).ok_or_else(|| {
                    StoreError::KeyFile(format!(
                        "the secret of {access_key_id} was sealed by key {id}, which this server was not given"
                    ))
                })?;
            (vec![&key.1], sealed)
        } else if let Some(sealed) = stored.strip_prefix(SEALED_V1) {
            (self.keys.iter().map(|(_, c)| c).collect(), sealed)
        } else {
            return Ok(SecretKey::new(stored.to_owned()));
        };
        let bytes = hex::decode(sealed).map_err(|_| bad())?;
        if bytes.len() < 12 {
            return Err(bad());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        for cipher in candidates {
            let opened = cipher.decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: access_key_id.as_bytes(),
                },
            );
            if let Ok(plain) = opened {
                return Ok(SecretKey::new(String::from_utf8(plain).map_err(|_| bad())?));
            }
        }
        Err(bad())
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
        // A rotation: the new box seals with its key and still opens what the old one sealed.
        let (new, _) = SecretBox::generate();
        let rotating = new.clone().replacing(&b);
        assert_eq!(
            rotating.open("AKIAX", &stored).unwrap().expose(),
            "wJalrXUtnFEMI"
        );
        assert!(!rotating.is_current(&stored));
        let resealed = rotating.seal("AKIAX", "wJalrXUtnFEMI");
        assert!(rotating.is_current(&resealed) && new.is_current(&resealed));
        assert_eq!(
            new.open("AKIAX", &resealed).unwrap().expose(),
            "wJalrXUtnFEMI"
        );
        let refused = b.open("AKIAX", &resealed).err().unwrap().to_string();
        assert!(
            refused.contains("which this server was not given"),
            "{refused}"
        );
        // Legacy plain text still reads.
        assert_eq!(b.open("AKIAX", "plain").unwrap().expose(), "plain");
    }
}
