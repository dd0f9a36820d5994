//! Server secrets: the token-signing key, the person-key HMAC key and the OTP-hash key.
//!
//! Each comes from configuration (hex or base64) if given; otherwise from
//! `DATA_DIR/secrets.toml`; otherwise it is generated (32 random bytes) and written there on
//! first start, file mode 0600, so that every later start (and `kataar admin`) uses the same one.
//! The caller logs a warning naming what was generated, never the values. The person key must
//! never change once IDs have been keyed with it: a secrets file that cannot be read or parsed is
//! an error, never a reason to generate new secrets. Against a database that already holds
//! data the server uses [`Secrets::load_existing`], which never generates, and compares each
//! secret's [`Secrets::check_value`] with the one the database stores.
//!
//! File format (lowercase hex strings; keys absent from it are generated and added):
//! ```toml
//! token_key = "…"
//! person_key = "…"
//! otp_key = "…"
//! certificate_key = "…"   # optional
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Name of the secrets file inside the data directory.
pub const SECRETS_FILE_NAME: &str = "secrets.toml";
/// Bytes of a generated secret.
pub const SECRET_BYTES_GENERATED: usize = 32;
/// Fewest bytes accepted for a configured secret.
pub const SECRET_BYTES_MIN: usize = 16;
/// Longest configured secret accepted, in characters.
pub const SECRET_CHARS_MAX: usize = 1024;
/// Times the first-start write is retried when another process creates the file at the same time.
pub const SECRETS_WRITE_ATTEMPTS_MAX: u32 = 3;

/// The label a secret's check value is the HMAC of (followed by the secret's name).
pub const SECRET_CHECK_LABEL: &str = "kataar secret check v1: ";

/// The names of the three secrets, as in the file and in [`SecretsError`].
pub const SECRET_NAMES: [&str; 3] = ["token_key", "person_key", "otp_key"];

/// Secrets given in configuration or the environment (hex or base64 strings). `Debug` is redacted.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretOverrides {
    /// Token-signing key.
    pub token_key: Option<String>,
    /// Person-key HMAC key.
    pub person_key: Option<String>,
    /// OTP-hash HMAC key.
    pub otp_key: Option<String>,
    /// Certificate-signing seed (optional: see [`Secrets::certificate_key`]).
    pub certificate_key: Option<String>,
}

impl std::fmt::Debug for SecretOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |v: &Option<String>| if v.is_some() { "<redacted>" } else { "<unset>" };
        f.debug_struct("SecretOverrides")
            .field("token_key", &shown(&self.token_key))
            .field("person_key", &shown(&self.person_key))
            .field("otp_key", &shown(&self.otp_key))
            .field("certificate_key", &shown(&self.certificate_key))
            .finish()
    }
}

/// The server's secrets. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    /// Signs citizens' tokens and signed blobs ([`crate::token::TokenSigner`]).
    pub token_key: Vec<u8>,
    /// Keys photo IDs ([`crate::person_key::PersonKeyer`]).
    pub person_key: Vec<u8>,
    /// Keys stored OTP hashes ([`crate::otp::OtpManager`]).
    pub otp_key: Vec<u8>,
    /// Seeds the Ed25519 key that signs vaccination certificates: configured
    /// (`certificate_secret`), or `certificate_key` in the secrets file, or else derived from
    /// the token key (HMAC-SHA256 of [`CERTIFICATE_SEED_LABEL`]), so it is as stable as the
    /// token key, which the database checks.
    pub certificate_key: Vec<u8>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "Secrets { token_key: <redacted>, person_key: <redacted>, otp_key: <redacted>, \
             certificate_key: <redacted> }",
        )
    }
}

/// Why secrets could not be loaded. Messages name the secret and the file, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// A configured or stored value cannot be used.
    #[error("secret {name} from {origin}: {reason}")]
    BadValue {
        /// Which secret.
        name: &'static str,
        /// `"configuration"` or the secrets file's path.
        origin: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The data directory or the secrets file cannot be read or written.
    #[error("cannot read or write {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The secrets file is not the expected TOML.
    #[error("{path} is not a valid secrets file (expected TOML with hex strings token_key, person_key, otp_key); fix or restore it: new secrets would orphan every stored person key")]
    Parse {
        /// The file.
        path: PathBuf,
    },
    /// A secret is neither configured nor in the secrets file, and may not be generated.
    #[error("secret {name} is not configured and {path} does not hold it")]
    Missing {
        /// Which secret.
        name: &'static str,
        /// The secrets file looked in.
        path: PathBuf,
    },
    /// Another process kept rewriting the file while this one tried to create it.
    #[error(
        "{path} changed during every one of {SECRETS_WRITE_ATTEMPTS_MAX} attempts to create it"
    )]
    Race {
        /// The file.
        path: PathBuf,
    },
}

#[derive(Default, Serialize, Deserialize)]
struct FileSecrets {
    #[serde(skip_serializing_if = "Option::is_none")]
    token_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    person_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    otp_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_key: Option<String>,
}

impl FileSecrets {
    fn get(&self, i: usize) -> Option<&String> {
        [&self.token_key, &self.person_key, &self.otp_key][i].as_ref()
    }
    fn set(&mut self, i: usize, v: String) {
        *[&mut self.token_key, &mut self.person_key, &mut self.otp_key][i] = Some(v);
    }
}

/// Decodes a configured secret: hex if it is an even number of hex digits, else base64
/// (standard or URL-safe, padded or not). Surrounding whitespace is ignored.
pub fn decode_secret(
    name: &'static str,
    origin: &str,
    value: &str,
) -> Result<Vec<u8>, SecretsError> {
    let bad = |reason| SecretsError::BadValue {
        name,
        origin: origin.to_owned(),
        reason,
    };
    let v = value.trim();
    if v.len() > SECRET_CHARS_MAX {
        return Err(bad("longer than 1024 characters"));
    }
    let is_hex = v.len() % 2 == 0 && v.bytes().all(|b| b.is_ascii_hexdigit());
    let bytes = if is_hex {
        hex::decode(v).map_err(|_| bad("not valid hex"))?
    } else {
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|e| e.decode(v).ok())
            .ok_or_else(|| bad("neither hex nor base64"))?
    };
    if bytes.len() < SECRET_BYTES_MIN {
        return Err(bad(
            "shorter than 16 bytes (use 32 random bytes, e.g. `openssl rand -hex 32`)",
        ));
    }
    Ok(bytes)
}

/// The label the certificate-signing seed is derived under when none is configured.
pub const CERTIFICATE_SEED_LABEL: &str = "kataar certificate signing seed v1";

/// The certificate-signing seed: configured, else from the secrets file, else derived from the
/// token key.
fn certificate_key(
    data_dir: &Path,
    from_config: &SecretOverrides,
    token_key: &[u8],
) -> Result<Vec<u8>, SecretsError> {
    if let Some(v) = &from_config.certificate_key {
        return decode_secret("certificate_key", "configuration", v);
    }
    let path = data_dir.join(SECRETS_FILE_NAME);
    if let Some(v) = read_file(&path)?.and_then(|f| f.certificate_key) {
        return decode_secret("certificate_key", &path.display().to_string(), &v);
    }
    Ok(derive_key(token_key, CERTIFICATE_SEED_LABEL.as_bytes()).to_vec())
}

/// A key for one purpose derived from a secret: HMAC-SHA256(secret, label). Different labels
/// give unrelated keys, and none reveals the secret.
pub fn derive_key(secret: &[u8], label: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // HMAC takes a key of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return [0; 32];
    };
    mac.update(label);
    mac.finalize().into_bytes().into()
}

fn random_secret() -> Vec<u8> {
    let mut v = vec![0u8; SECRET_BYTES_GENERATED];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SecretsError + '_ {
    move |source| SecretsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads the secrets file; `None` if it does not exist.
fn read_file(path: &Path) -> Result<Option<FileSecrets>, SecretsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|_| SecretsError::Parse {
                path: path.to_owned(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Writes `content` to a fresh temporary file (mode 0600) next to `path` and returns its path.
fn write_temp(dir: &Path, content: &str) -> Result<PathBuf, SecretsError> {
    let tmp = dir.join(format!(
        ".{SECRETS_FILE_NAME}.tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
    f.write_all(content.as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    Ok(tmp)
}

impl Secrets {
    /// Three fresh random secrets (tests, or a throw-away server).
    pub fn generate() -> Secrets {
        Secrets {
            token_key: random_secret(),
            person_key: random_secret(),
            otp_key: random_secret(),
            certificate_key: random_secret(),
        }
    }

    /// Loads the secrets: configuration wins, then `data_dir/secrets.toml`; the rest are generated
    /// and written to that file (created with mode 0600; `data_dir` created if missing). Returns
    /// the secrets and the names of those generated now (log a warning naming them).
    ///
    /// When every secret is configured, the data directory is not touched.
    pub fn load_or_generate(
        data_dir: &Path,
        from_config: SecretOverrides,
    ) -> Result<(Secrets, Vec<String>), SecretsError> {
        let configured = [
            &from_config.token_key,
            &from_config.person_key,
            &from_config.otp_key,
        ];
        let mut values: [Option<Vec<u8>>; 3] = [None, None, None];
        for (i, v) in configured.iter().enumerate() {
            if let Some(v) = v {
                values[i] = Some(decode_secret(SECRET_NAMES[i], "configuration", v)?);
            }
        }
        let path = data_dir.join(SECRETS_FILE_NAME);
        let mut generated = Vec::new();
        if values.iter().any(Option::is_none) {
            generated = Self::fill_from_file(data_dir, &path, &mut values)?;
        }
        let [Some(token_key), Some(person_key), Some(otp_key)] = values else {
            unreachable!("fill_from_file sets every missing secret")
        };
        let certificate_key = certificate_key(data_dir, &from_config, &token_key)?;
        Ok((
            Secrets {
                token_key,
                person_key,
                otp_key,
                certificate_key,
            },
            generated,
        ))
    }

    /// Loads the secrets like [`Secrets::load_or_generate`] but never writes one: a token or
    /// person key neither configured nor in `data_dir/secrets.toml` is
    /// [`SecretsError::Missing`]; a missing OTP key is drawn for this process only (OTP
    /// hashes are never stored). For a server starting against a database that already
    /// holds data keyed with secrets.
    pub fn load_existing(
        data_dir: &Path,
        from_config: SecretOverrides,
    ) -> Result<Secrets, SecretsError> {
        let configured = [
            &from_config.token_key,
            &from_config.person_key,
            &from_config.otp_key,
        ];
        let path = data_dir.join(SECRETS_FILE_NAME);
        let origin = path.display().to_string();
        let file = if configured.iter().any(|v| v.is_none()) {
            read_file(&path)?.unwrap_or_default()
        } else {
            FileSecrets::default()
        };
        let mut values: Vec<Vec<u8>> = Vec::with_capacity(3);
        for (i, v) in configured.iter().enumerate() {
            let value = match (v, file.get(i)) {
                (Some(v), _) => decode_secret(SECRET_NAMES[i], "configuration", v)?,
                (None, Some(v)) => decode_secret(SECRET_NAMES[i], &origin, v)?,
                // OTP hashes live in memory only: a key for this process's life will do.
                (None, None) if SECRET_NAMES[i] == "otp_key" => random_secret(),
                (None, None) => {
                    return Err(SecretsError::Missing {
                        name: SECRET_NAMES[i],
                        path,
                    })
                }
            };
            values.push(value);
        }
        let otp_key = values.pop().unwrap_or_default();
        let person_key = values.pop().unwrap_or_default();
        let token_key = values.pop().unwrap_or_default();
        let certificate_key = certificate_key(data_dir, &from_config, &token_key)?;
        Ok(Secrets {
            token_key,
            person_key,
            otp_key,
            certificate_key,
        })
    }

    /// The check value of the secret `name` (one of [`SECRET_NAMES`]): hex HMAC-SHA256 of
    /// the fixed label [`SECRET_CHECK_LABEL`] under that secret. Stored beside the data the
    /// secret keys, it shows whether a configured secret is the one the data was written
    /// with, and reveals nothing of the secret.
    pub fn check_value(&self, name: &str) -> Option<String> {
        use hmac::{Hmac, Mac};
        let key = match name {
            "token_key" => &self.token_key,
            "person_key" => &self.person_key,
            "otp_key" => &self.otp_key,
            _ => return None,
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
        mac.update(SECRET_CHECK_LABEL.as_bytes());
        mac.update(name.as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }

    fn fill_from_file(
        data_dir: &Path,
        path: &Path,
        values: &mut [Option<Vec<u8>>; 3],
    ) -> Result<Vec<String>, SecretsError> {
        let origin = path.display().to_string();
        for _ in 0..SECRETS_WRITE_ATTEMPTS_MAX {
            let existing = read_file(path)?;
            let existed = existing.is_some();
            let mut file = existing.unwrap_or_default();
            let mut generated = Vec::new();
            let mut from_file: [Option<Vec<u8>>; 3] = [None, None, None];
            for i in 0..3 {
                if values[i].is_some() {
                    continue;
                }
                if let Some(v) = file.get(i) {
                    from_file[i] = Some(decode_secret(SECRET_NAMES[i], &origin, v)?);
                } else {
                    let fresh = random_secret();
                    file.set(i, hex::encode(&fresh));
                    from_file[i] = Some(fresh);
                    generated.push(SECRET_NAMES[i].to_owned());
                }
            }
            if !generated.is_empty() {
                std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
                let body = toml::to_string(&file).map_err(|_| SecretsError::Parse {
                    path: path.to_owned(),
                })?;
                let content = format!(
                    "# Kataar server secrets, generated on first start. Keep this file private and\n\
                     # backed up: person_key keys every stored photo ID.\n{body}"
                );
                let tmp = write_temp(data_dir, &content)?;
                let placed = if existed {
                    std::fs::rename(&tmp, path).map(|()| true)
                } else {
                    // Atomic create-if-absent: a concurrent first start makes one of us re-read.
                    let linked = std::fs::hard_link(&tmp, path);
                    let _ = std::fs::remove_file(&tmp);
                    match linked {
                        Ok(()) => Ok(true),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                        Err(e) => Err(e),
                    }
                };
                match placed {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(io_err(path)(e));
                    }
                }
                if let Ok(dir) = std::fs::File::open(data_dir) {
                    let _ = dir.sync_all();
                }
            }
            for i in 0..3 {
                if values[i].is_none() {
                    values[i] = from_file[i].take();
                }
            }
            return Ok(generated);
        }
        Err(SecretsError::Race {
            path: path.to_owned(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn first_start_generates_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested").join("data");
        let (s1, gen1) = Secrets::load_or_generate(&data, SecretOverrides::default()).unwrap();
        assert_eq!(gen1, vec!["token_key", "person_key", "otp_key"]);
        assert_eq!(s1.token_key.len(), 32);
        assert_ne!(s1.token_key, s1.person_key);
        assert_ne!(s1.person_key, s1.otp_key);
        let path = data.join(SECRETS_FILE_NAME);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (s2, gen2) = Secrets::load_or_generate(&data, SecretOverrides::default()).unwrap();
        assert!(gen2.is_empty());
        assert_eq!(s1, s2);
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(SECRETS_FILE_NAME)]);
    }

    #[test]
    fn configuration_wins_and_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let token_hex = "ab".repeat(32);
        let person_b64 = STANDARD.encode([7u8; 24]);
        let cfg = SecretOverrides {
            token_key: Some(token_hex.clone()),
            person_key: Some(format!(" {person_b64}\n")),
            otp_key: None,
            certificate_key: None,
        };
        let (s, generated) = Secrets::load_or_generate(dir.path(), cfg.clone()).unwrap();
        assert_eq!(generated, vec!["otp_key"]);
        assert_eq!(s.token_key, vec![0xab; 32]);
        assert_eq!(s.person_key, vec![7u8; 24]);
        let text = std::fs::read_to_string(dir.path().join(SECRETS_FILE_NAME)).unwrap();
        assert!(!text.contains(&token_hex));
        assert!(
            !text.contains("token_key =") && !text.contains("person_key ="),
            "{text}"
        );
        assert!(text.contains(&hex::encode(&s.otp_key)));
        let (again, generated) = Secrets::load_or_generate(dir.path(), cfg).unwrap();
        assert!(generated.is_empty());
        assert_eq!(again, s);
    }

    #[test]
    fn all_configured_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("never-created");
        let cfg = SecretOverrides {
            token_key: Some("11".repeat(32)),
            person_key: Some(URL_SAFE_NO_PAD.encode([0xfb; 32])),
            otp_key: Some("33".repeat(16)),
            certificate_key: None,
        };
        let (s, generated) = Secrets::load_or_generate(&data, cfg).unwrap();
        assert!(generated.is_empty());
        assert_eq!(s.person_key, vec![0xfb; 32]);
        assert!(!data.exists());
    }

    #[test]
    fn bad_values_are_refused_without_echoing_them() {
        let dir = tempfile::tempdir().unwrap();
        for (value, reason) in [("zz-not-a-secret!!", "neither"), ("abcd", "shorter")] {
            let cfg = SecretOverrides {
                otp_key: Some(value.to_owned()),
                ..SecretOverrides::default()
            };
            let err = Secrets::load_or_generate(dir.path(), cfg).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("otp_key") && msg.contains(reason), "{msg}");
            assert!(!msg.contains(value), "{msg}");
        }
        assert!(!dir.path().join(SECRETS_FILE_NAME).exists());
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_reason_to_regenerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SECRETS_FILE_NAME);
        std::fs::write(&path, "person_key = \"deadbeef-secret-ish\n").unwrap();
        let err = Secrets::load_or_generate(dir.path(), SecretOverrides::default()).unwrap_err();
        assert!(matches!(err, SecretsError::Parse { .. }), "{err}");
        assert!(!err.to_string().contains("deadbeef"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "person_key = \"deadbeef-secret-ish\n"
        );
        std::fs::write(&path, "person_key = \"short\"\n").unwrap();
        let err = Secrets::load_or_generate(dir.path(), SecretOverrides::default()).unwrap_err();
        assert!(
            matches!(
                err,
                SecretsError::BadValue {
                    name: "person_key",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn partial_file_keeps_what_it_has() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SECRETS_FILE_NAME);
        let person = "5a".repeat(32);
        std::fs::write(&path, format!("person_key = \"{person}\"\n")).unwrap();
        let (s, generated) =
            Secrets::load_or_generate(dir.path(), SecretOverrides::default()).unwrap();
        assert_eq!(generated, vec!["token_key", "otp_key"]);
        assert_eq!(s.person_key, vec![0x5a; 32]);
        let (again, none) =
            Secrets::load_or_generate(dir.path(), SecretOverrides::default()).unwrap();
        assert!(none.is_empty());
        assert_eq!(again, s);
    }

    #[test]
    fn certificate_key_is_configured_or_derived_from_the_token_key() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = Secrets::load_or_generate(dir.path(), SecretOverrides::default()).unwrap();
        let b = Secrets::load_existing(dir.path(), SecretOverrides::default()).unwrap();
        assert_eq!(a.certificate_key, b.certificate_key);
        assert_eq!(a.certificate_key.len(), 32);
        assert_ne!(a.certificate_key, a.token_key);
        let cfg = SecretOverrides {
            certificate_key: Some("44".repeat(32)),
            ..SecretOverrides::default()
        };
        let c = Secrets::load_existing(dir.path(), cfg).unwrap();
        assert_eq!(c.certificate_key, vec![0x44; 32]);
        assert_eq!(c.token_key, a.token_key);
    }

    #[test]
    fn load_existing_never_generates() {
        let dir = tempfile::tempdir().unwrap();
        let err = Secrets::load_existing(dir.path(), SecretOverrides::default()).unwrap_err();
        assert!(
            matches!(
                err,
                SecretsError::Missing {
                    name: "token_key",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!dir.path().join(SECRETS_FILE_NAME).exists());
        let (made, _) = Secrets::load_or_generate(dir.path(), SecretOverrides::default()).unwrap();
        let loaded = Secrets::load_existing(dir.path(), SecretOverrides::default()).unwrap();
        assert_eq!(made, loaded);
    }

    #[test]
    fn check_values_tell_secrets_apart_and_hide_them() {
        let a = Secrets::generate();
        let b = Secrets::generate();
        let ca = a.check_value("person_key").unwrap();
        assert_eq!(ca.len(), 64);
        assert_eq!(Some(ca.clone()), a.clone().check_value("person_key"));
        assert_ne!(Some(ca.clone()), b.check_value("person_key"));
        assert_ne!(a.check_value("token_key"), a.check_value("person_key"));
        assert!(!ca.contains(&hex::encode(&a.person_key)));
        assert_eq!(a.check_value("nope"), None);
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secrets {
            token_key: b"TOPSECRETTOKEN!!".to_vec(),
            ..Secrets::generate()
        };
        let o = SecretOverrides {
            token_key: Some("cafebabe".repeat(8)),
            ..SecretOverrides::default()
        };
        let dbg = format!("{s:?} {o:?}");
        assert!(
            !dbg.contains("TOPSECRET") && !dbg.contains("cafebabe"),
            "{dbg}"
        );
        assert!(dbg.contains("<unset>"));
    }

    #[test]
    fn decoding_forms() {
        let raw = [
            0xfbu8, 0xff, 0x00, 0x3e, 0x3f, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90,
            0xa0, 0xb0,
        ];
        for enc in [
            hex::encode(raw),
            hex::encode_upper(raw),
            STANDARD.encode(raw),
            STANDARD_NO_PAD.encode(raw),
            URL_SAFE.encode(raw),
            URL_SAFE_NO_PAD.encode(raw),
        ] {
            assert_eq!(
                decode_secret("token_key", "configuration", &enc).unwrap(),
                raw,
                "{enc}"
            );
        }
        assert!(decode_secret(
            "token_key",
            "configuration",
            &"a".repeat(SECRET_CHARS_MAX + 2)
        )
        .is_err());
    }
}
