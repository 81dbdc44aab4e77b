//! `headroom-collector ca init` and `cert issue`: the files an operator needs before agents can connect.

use crate::identity::registry::{CertRecord, IssuedBy, Registry};
use headroom_common::pki::{
    cert_info, create_ca, fingerprint_sha256, issue_client_cert, issue_server_cert, read_pem,
    validate_host_name, write_private_pem, write_public_pem, CertAndKey,
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
    #[error("{0}")]
    Registry(#[from] crate::identity::StoreError),
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
/// layout the agent's state directory expects. Returns what the certificate registry would record.
pub fn cert_issue(
    ca: &CertAndKey,
    host: &str,
    out: &Path,
    validity: Duration,
    now: SystemTime,
) -> Result<CertRecord, PkiCommandError> {
    let (issued, record) = issue_for_host(ca, host, validity, now)?;
    write_agent_files(ca, &issued, out)?;
    Ok(record)
}

/// `cert issue` as the command line runs it: like `cert_issue`, and recorded in the registry of the pki
/// directory `pki_dir` first, so that `cert list` shows the certificate and `cert revoke --host` covers it.
pub fn cert_issue_recorded(
    pki_dir: &Path,
    ca: &CertAndKey,
    host: &str,
    out: &Path,
    validity: Duration,
    now: SystemTime,
) -> Result<CertRecord, PkiCommandError> {
    let (issued, record) = issue_for_host(ca, host, validity, now)?;
    // Recorded before the files exist: a record without files is harmless, a certificate that revocation by
    // host cannot find is not.
    Registry::in_dir(pki_dir).record_issued(record.clone())?;
    write_agent_files(ca, &issued, out)?;
    Ok(record)
}

fn issue_for_host(
    ca: &CertAndKey,
    host: &str,
    validity: Duration,
    now: SystemTime,
) -> Result<(CertAndKey, CertRecord), PkiCommandError> {
    validate_host_name(host)?;
    let issued = issue_client_cert(ca, host, now, validity)?;
    let info = cert_info(&issued.cert_pem)?;
    let record = CertRecord {
        host: host.to_string(),
        serial: info.serial_hex,
        labels: Default::default(),
        issued_at_s: crate::identity::unix_s(now),
        not_after_s: info.not_after_s,
        issued_by: IssuedBy::Issue,
        last_seen_s: None,
    };
    Ok((issued, record))
}

fn write_agent_files(ca: &CertAndKey, issued: &CertAndKey, out: &Path) -> Result<(), PkiCommandError> {
    create_dir_private(out)?;
    write_private_pem(&out.join("agent.key"), &issued.key_pem)?;
    write_public_pem(&out.join("agent.pem"), &issued.cert_pem)?;
    write_public_pem(&out.join("ca.pem"), &ca.cert_pem)?;
    Ok(())
}

/// Replace the collector's server certificate in `dir` with a new one for `server_names`, signed by the CA
/// there. The key is written before the certificate, each atomically; a running collector loads the pair
/// once both have settled (or on SIGHUP), and open agent connections are kept. Returns the new serial.
pub fn server_cert_renew(
    dir: &Path,
    server_names: &[String],
    validity: Duration,
    now: SystemTime,
) -> Result<String, PkiCommandError> {
    for name in server_names {
        if name.parse::<std::net::IpAddr>().is_err() {
            validate_host_name(name)?;
        }
    }
    let ca = load_ca(dir)?;
    let server = issue_server_cert(&ca, server_names, now, validity)?;
    write_private_pem(&dir.join("server.key"), &server.key_pem)?;
    write_public_pem(&dir.join("server.pem"), &server.cert_pem)?;
    Ok(cert_info(&server.cert_pem)?.serial_hex)
}

fn create_dir_private(dir: &Path) -> Result<(), PkiCommandError> {
    headroom_common::files::create_dir_all(dir, headroom_common::files::PRIVATE_DIR).map_err(|e| {
        PkiCommandError::Io {
            path: dir.display().to_string(),
            detail: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::files::{mode_of, UmaskGuard};
    use std::os::unix::fs::PermissionsExt;

    /// Issue 11, point 7: the modes are the ones the code asks for, not whatever a permissive umask leaves.
    #[test]
    fn issue_11_pki_files_and_dirs_have_explicit_modes_under_a_permissive_umask() {
        let _umask = UmaskGuard::set(0);
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("state/pki");
        let names = vec!["localhost".to_string()];
        ca_init(&pki, &names, false, SystemTime::now()).unwrap();
        let ca = load_ca(&pki).unwrap();
        let out = dir.path().join("agents/web-1");
        cert_issue_recorded(
            &pki,
            &ca,
            "web-1",
            &out,
            Duration::from_secs(3600),
            SystemTime::now(),
        )
        .unwrap();
        for (path, mode) in [
            (pki.clone(), 0o700),
            (out.clone(), 0o700),
            (pki.join("ca.key"), 0o600),
            (pki.join("server.key"), 0o600),
            (pki.join("certs.json"), 0o600),
            (out.join("agent.key"), 0o600),
            (pki.join("ca.pem"), 0o644),
            (pki.join("server.pem"), 0o644),
            (out.join("agent.pem"), 0o644),
        ] {
            assert_eq!(mode_of(&path).unwrap(), mode, "{}", path.display());
        }
    }

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
        // The command-line path records the certificate, so revocation by host finds it.
        let recorded = cert_issue_recorded(
            &pki,
            &ca,
            "web-2",
            &out,
            Duration::from_secs(3600),
            SystemTime::now(),
        )
        .unwrap();
        let list = Registry::in_dir(&pki).list().unwrap();
        assert_eq!(list.certs, vec![recorded.clone()]);
        assert_eq!(recorded.issued_by, IssuedBy::Issue);
        let on_disk = cert_info(&std::fs::read_to_string(out.join("agent.pem")).unwrap()).unwrap();
        assert_eq!(on_disk.serial_hex, recorded.serial);
        assert_eq!(
            list.live_serials_of("web-2", recorded.issued_at_s),
            vec![recorded.serial]
        );

        // A new server certificate from the same CA replaces the old one, key private.
        let old_serial = cert_info(&std::fs::read_to_string(pki.join("server.pem")).unwrap())
            .unwrap()
            .serial_hex;
        let new_serial =
            server_cert_renew(&pki, &names, Duration::from_secs(86_400), SystemTime::now()).unwrap();
        assert_ne!(new_serial, old_serial);
        let served = cert_info(&std::fs::read_to_string(pki.join("server.pem")).unwrap()).unwrap();
        assert_eq!(served.serial_hex, new_serial);
        assert_eq!(
            std::fs::metadata(pki.join("server.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );

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
