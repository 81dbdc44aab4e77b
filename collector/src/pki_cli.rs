//! `headroom-collector ca init` and `cert issue`: the files an operator needs before agents can connect.

use headroom_common::pki::{
    create_ca, fingerprint_sha256, issue_client_cert, issue_server_cert, read_pem, validate_host_name,
    write_private_pem, write_public_pem, CertAndKey,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Where the collector keeps its PKI: `<state_dir>/pki`.
pub fn pki_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("pki")
}

#[derive(Debug, thiserror::Error)]
pub enum PkiCommandError {
    #[error("a CA already exists in {0} (pass --force to replace it; every agent certificate then has to be issued again)")]
    Exists(String),
    #[error("{0}")]
    Pki(#[from] headroom_common::pki::PkiError),
    #[error("creating {path}: {detail}")]
    Io { path: String, detail: String },
}

/// What `ca init` made.
pub struct CaInitOutcome {
    pub dir: PathBuf,
    pub fingerprint: String,
}

/// Create the CA and the collector's server certificate (for `server_names`) in `dir`.
pub fn ca_init(
    dir: &Path,
    server_names: &[String],
    force: bool,
    now: SystemTime,
) -> Result<CaInitOutcome, PkiCommandError> {
    if dir.join("ca.key").exists() && !force {
        return Err(PkiCommandError::Exists(dir.display().to_string()));
    }
    for name in server_names {
        if name.parse::<std::net::IpAddr>().is_err() {
            validate_host_name(name)?;
        }
    }
    create_dir_private(dir)?;
    // A unique name per CA keeps a certificate from another fleet an "unknown issuer", not a bad signature.
    let ca = create_ca(&format!("headroom fleet CA {:08x}", fastrand::u32(..)), now, 3650)?;
    let server = issue_server_cert(&ca, server_names, now, Duration::from_secs(365 * 86_400))?;
    write_private_pem(&dir.join("ca.key"), &ca.key_pem)?;
    write_public_pem(&dir.join("ca.pem"), &ca.cert_pem)?;
    write_private_pem(&dir.join("server.key"), &server.key_pem)?;
    write_public_pem(&dir.join("server.pem"), &server.cert_pem)?;
    Ok(CaInitOutcome {
        dir: dir.to_path_buf(),
        fingerprint: fingerprint_sha256(&ca.cert_pem)?,
    })
}

/// Load the CA from `dir`.
pub fn load_ca(dir: &Path) -> Result<CertAndKey, PkiCommandError> {
    let fix = "run \"headroom-collector ca init\" first";
    Ok(CertAndKey {
        cert_pem: read_pem(&dir.join("ca.pem"), "CA certificate", fix)?,
        key_pem: read_pem(&dir.join("ca.key"), "CA key", fix)?,
    })
}

/// Issue a client certificate for `host` and write `agent.pem`, `agent.key` and `ca.pem` into `out`, the
/// layout the agent's state directory expects.
pub fn cert_issue(
    ca: &CertAndKey,
    host: &str,
    out: &Path,
    validity: Duration,
    now: SystemTime,
) -> Result<(), PkiCommandError> {
    validate_host_name(host)?;
    let issued = issue_client_cert(ca, host, now, validity)?;
    create_dir_private(out)?;
    write_private_pem(&out.join("agent.key"), &issued.key_pem)?;
    write_public_pem(&out.join("agent.pem"), &issued.cert_pem)?;
    write_public_pem(&out.join("ca.pem"), &ca.cert_pem)?;
    Ok(())
}

fn create_dir_private(dir: &Path) -> Result<(), PkiCommandError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PkiCommandError::Io {
            path: dir.display().to_string(),
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ca_init_refuses_to_overwrite_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let outcome = ca_init(&pki, &names, false, SystemTime::now()).unwrap();
        assert!(outcome.fingerprint.starts_with("SHA256:"));
        let err = ca_init(&pki, &names, false, SystemTime::now())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--force"), "{err}");
        let ca = load_ca(&pki).unwrap();
        let out = dir.path().join("web-1");
        cert_issue(&ca, "web-1", &out, Duration::from_secs(3600), SystemTime::now()).unwrap();
        for (file, mode) in [
            (pki.join("ca.key"), 0o600),
            (pki.join("server.key"), 0o600),
            (out.join("agent.key"), 0o600),
            (out.join("agent.pem"), 0o644),
        ] {
            let actual = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(actual, mode, "{}", file.display());
        }
        let bad = cert_issue(
            &ca,
            "Not A Name",
            &out,
            Duration::from_secs(60),
            SystemTime::now(),
        );
        assert!(bad.is_err());
    }
}
